/**
 * `sleigh jobs`: a running server's workpools, for operators. `failed <pool>` lists the jobs
 * that failed for good (oldest first, saying when there are more); `retry <pool>` runs them
 * again (all of them, a page at a time, or the oldest --limit, or the --id ones), each with
 * everything downstream of it, and names those it could not; `pause <pool>` and `resume <pool>`
 * stop and restart the pool's starts fleet-wide. All go through the server's admin HTTP API.
 */
import type { FailedJob, SkippedJob } from '@sleigh/engine';
import { CliError, type Output } from './context.js';
import { printable } from './printable.js';
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

/** Pages of a retry of every dead letter: each one transaction on the server. */
const RETRY_PAGE = 1000;

export async function jobs(
  positionals: string[],
  values: { limit?: string | undefined; id?: string[] | undefined },
  /** Asked once the arguments are known to be right. */
  serverAccess: () => Access,
  output: Output,
): Promise<number> {
  const [action, pool] = positionals;
  if (
    (action !== 'failed' && action !== 'retry' && action !== 'pause' && action !== 'resume') ||
    pool === undefined
  ) {
    throw new CliError(
      'Usage: sleigh jobs failed <pool> [--limit n] | sleigh jobs retry <pool> [--id <id> ...] [--limit n] | sleigh jobs pause|resume <pool>',
      2,
    );
  }
  // An empty name would make the path /pools//failed, which the server does not know.
  if (pool.trim() === '')
    throw new CliError('sleigh jobs needs a pool name: sleigh jobs failed <pool>', 2);
  if (action === 'failed' && values.id !== undefined)
    throw new CliError('--id is for sleigh jobs retry; sleigh jobs failed lists them all', 2);
  if ((action === 'pause' || action === 'resume') && (values.id ?? values.limit) !== undefined)
    throw new CliError(`sleigh jobs ${action} takes a pool name only, no --id or --limit`, 2);
  const base = `/api/sleigh/pools/${encodeURIComponent(pool)}`;
  const limit = limitOf(values.limit);
  const access = serverAccess();
  if (action === 'pause' || action === 'resume') {
    const { wasPaused } = await call(access, `${base}/${action}`, { method: 'POST', body: '{}' });
    if (typeof wasPaused !== 'boolean') throw notSleigh(access);
    output.out(
      action === 'pause'
        ? wasPaused
          ? `Pool "${pool}" was already paused`
          : `Paused pool "${pool}": none of its jobs start until \`sleigh jobs resume ${pool}\` (running ones finish)`
        : wasPaused
          ? `Resumed pool "${pool}": its jobs start again`
          : `Pool "${pool}" was not paused`,
    );
    return 0;
  }
  if (action === 'failed') {
    const shown = limit ?? 100;
    const { jobs: list, more } = await call(access, `${base}/failed?limit=${shown}`);
    if (!Array.isArray(list)) throw notSleigh(access);
    if (list.length === 0) {
      output.out(`No failed jobs in pool "${pool}"`);
      return 0;
    }
    for (const job of list as FailedJob[]) {
      const when = new Date(job.failedAt).toISOString();
      // Errors often carry text from outside systems: it must not act on the terminal.
      output.out(
        `${printable(job.id)}  ${when}  ${printable(job.name)}  (${job.attempts} attempts)  ${printable(job.error)}`,
      );
    }
    const count = `${list.length} failed job${list.length === 1 ? '' : 's'}`;
    output.out(
      more === true
        ? `The oldest ${count} in pool "${pool}"; there are more (--limit <n> lists up to n)`
        : `${count} in pool "${pool}"`,
    );
    return 0;
  }
  if (values.id !== undefined) {
    const { retried } = await call(access, `${base}/retry`, {
      method: 'POST',
      body: JSON.stringify({ ids: values.id, ...(limit === undefined ? {} : { limit }) }),
    });
    if (typeof retried !== 'number') throw notSleigh(access);
    output.out(
      `Retried ${retried} job${retried === 1 ? '' : 's'} in pool "${pool}" (with what depends on them)`,
    );
    return 0;
  }
  // Every dead letter (or the oldest --limit), a page per request: one transaction for all of
  // them would hold the database, and the server caps a request's page.
  let retried = 0;
  const skipped: SkippedJob[] = [];
  let left = limit ?? Infinity;
  let cursor: string | null = null;
  do {
    const page = Math.min(left, RETRY_PAGE);
    const answer = await call(access, `${base}/retry`, {
      method: 'POST',
      body: JSON.stringify({ limit: page, ...(cursor === null ? {} : { cursor }) }),
    });
    if (typeof answer.retried !== 'number') throw notSleigh(access);
    retried += answer.retried;
    if (Array.isArray(answer.skipped)) skipped.push(...(answer.skipped as SkippedJob[]));
    cursor = typeof answer.next === 'string' ? answer.next : null;
    left -= page;
  } while (cursor !== null && left > 0);
  for (const job of skipped) {
    output.out(`Skipped ${printable(job.id)}  ${printable(job.name)}: ${printable(job.reason)}`);
  }
  output.out(
    `Retried ${retried} job${retried === 1 ? '' : 's'} in pool "${pool}" (with what depends on them)${skipped.length === 0 ? '' : `; ${skipped.length} dead letter${skipped.length === 1 ? '' : 's'} could not be retried (listed above)`}`,
  );
  // Scripts must not take "some were left failed" for success.
  return skipped.length === 0 ? 0 : 1;
}
