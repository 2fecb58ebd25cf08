/**
 * `sleigh jobs`: a running server's workpool dead letters, for operators. `failed <pool>` lists
 * the jobs that failed for good (oldest first); `retry <pool>` runs them again, each with
 * everything downstream of it. Both go through the server's admin HTTP API.
 */
import type { FailedJob } from '@sleigh/engine';
import { CliError, type Output } from './context.js';

interface Access {
  readonly url: string;
  readonly adminKey: string;
}

function limitOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`--limit must be a whole number ≥ 1, got "${value}"`, 2);
  return n;
}

async function call(access: Access, path: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${access.url}${path}`, {
      ...init,
      headers: { 'Content-Type': 'application/json', Authorization: `Convex ${access.adminKey}` },
    });
  } catch (error) {
    throw new CliError(
      `Cannot reach a Sleigh server at ${access.url}: ${(error as Error).message}`,
    );
  }
  const body = (await response.json().catch(() => null)) as { message?: string } | null;
  if (!response.ok) {
    throw new CliError(
      `The server refused (HTTP ${response.status}): ${body?.message ?? 'no details'}`,
    );
  }
  return body;
}

export async function jobs(
  positionals: string[],
  values: { limit?: string | undefined; id?: string[] | undefined },
  access: Access,
  output: Output,
): Promise<number> {
  const [action, pool] = positionals;
  if ((action !== 'failed' && action !== 'retry') || pool === undefined) {
    throw new CliError(
      'Usage: sleigh jobs failed <pool> [--limit n] | sleigh jobs retry <pool> [--id <id> ...] [--limit n]',
      2,
    );
  }
  const base = `/api/sleigh/pools/${encodeURIComponent(pool)}`;
  const limit = limitOf(values.limit);
  if (action === 'failed') {
    const { jobs: list } = (await call(
      access,
      `${base}/failed${limit === undefined ? '' : `?limit=${limit}`}`,
    )) as { jobs: FailedJob[] };
    if (list.length === 0) {
      output.out(`No failed jobs in pool "${pool}"`);
      return 0;
    }
    for (const job of list) {
      const when = new Date(job.failedAt).toISOString();
      output.out(`${job.id}  ${when}  ${job.name}  (${job.attempts} attempts)  ${job.error}`);
    }
    output.out(`${list.length} failed job${list.length === 1 ? '' : 's'} in pool "${pool}"`);
    return 0;
  }
  const { retried } = (await call(access, `${base}/retry`, {
    method: 'POST',
    body: JSON.stringify({
      ...(values.id === undefined ? {} : { ids: values.id }),
      ...(limit === undefined ? {} : { limit }),
    }),
  })) as { retried: number };
  output.out(
    `Retried ${retried} job${retried === 1 ? '' : 's'} in pool "${pool}" (with what depends on them)`,
  );
  return 0;
}
