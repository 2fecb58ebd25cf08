/**
 * `sleigh jobs`: a running server's workpool dead letters, for operators. `failed <pool>` lists
 * the jobs that failed for good (oldest first); `retry <pool>` runs them again, each with
 * everything downstream of it. Both go through the server's admin HTTP API.
 */
import type { FailedJob } from '@sleigh/engine';
import { CliError, type Output } from './context.js';
import { callServer, refusal, type Access } from './remote.js';

function limitOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`--limit must be a whole number ≥ 1, got "${value}"`, 2);
  return n;
}

/** Listing or retrying dead letters is quick; a minute means something is wrong. */
const JOBS_TIMEOUT_MS = 60_000;

async function call(access: Access, path: string, init: { method?: string; body?: string } = {}) {
  const answer = await callServer(access, path, init, JOBS_TIMEOUT_MS);
  if (answer.status !== 200) throw new CliError(refusal(answer));
  return answer.body;
}

/** JSON, but not the answer Sleigh gives: some other API is at that URL. */
function notSleigh(access: Access): CliError {
  return new CliError(`${access.url} did not answer as a Sleigh server; check --url`);
}

export async function jobs(
  positionals: string[],
  values: { limit?: string | undefined; id?: string[] | undefined },
  /** Asked once the arguments are known to be right. */
  serverAccess: () => Access,
  output: Output,
): Promise<number> {
  const [action, pool] = positionals;
  if ((action !== 'failed' && action !== 'retry') || pool === undefined) {
    throw new CliError(
      'Usage: sleigh jobs failed <pool> [--limit n] | sleigh jobs retry <pool> [--id <id> ...] [--limit n]',
      2,
    );
  }
  if (action === 'failed' && values.id !== undefined)
    throw new CliError('--id is for sleigh jobs retry; sleigh jobs failed lists them all', 2);
  const base = `/api/sleigh/pools/${encodeURIComponent(pool)}`;
  const limit = limitOf(values.limit);
  const access = serverAccess();
  if (action === 'failed') {
    const { jobs: list } = await call(
      access,
      `${base}/failed${limit === undefined ? '' : `?limit=${limit}`}`,
    );
    if (!Array.isArray(list)) throw notSleigh(access);
    if (list.length === 0) {
      output.out(`No failed jobs in pool "${pool}"`);
      return 0;
    }
    for (const job of list as FailedJob[]) {
      const when = new Date(job.failedAt).toISOString();
      output.out(`${job.id}  ${when}  ${job.name}  (${job.attempts} attempts)  ${job.error}`);
    }
    output.out(`${list.length} failed job${list.length === 1 ? '' : 's'} in pool "${pool}"`);
    return 0;
  }
  const { retried } = await call(access, `${base}/retry`, {
    method: 'POST',
    body: JSON.stringify({
      ...(values.id === undefined ? {} : { ids: values.id }),
      ...(limit === undefined ? {} : { limit }),
    }),
  });
  if (typeof retried !== 'number') throw notSleigh(access);
  output.out(
    `Retried ${retried} job${retried === 1 ? '' : 's'} in pool "${pool}" (with what depends on them)`,
  );
  return 0;
}
