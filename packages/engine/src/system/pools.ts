/**
 * `_system/pools`: the dashboard's Pools and Jobs pages. Pools with their counts by state, a
 * pool's jobs, one job with its attempts and sizes, the dependency graph around a job, the
 * steering buttons (cancel, retry, re-run downstream, pause and resume a pool) and per-second
 * throughput and latency.
 */
import {
  internalMutationGeneric,
  internalQueryGeneric,
  paginationOptsValidator,
} from 'convex/server';
import { convexToJson, v, type Value } from 'convex/values';
import { POOL_JOB_STATES } from '../jobs/pool-jobs.js';
import {
  filteredPage,
  poolOp,
  system,
  systemDb,
  type Doc,
  type LooseReader,
  type RangeBuilder,
} from './syscall.js';

/** Counts stop here: a dashboard shows "10,000+". */
const COUNT_CAP = 10_000;
/** A graph view stops growing here (it says it was truncated). */
const GRAPH_CAP = 500;
/** A job page lists this many of its parents and children. */
const NEIGHBOURS_CAP = 200;

const byState = (pool: string, state: string) => (q: RangeBuilder) =>
  q.eq('pool', pool).eq('state', state);

/** Every workpool with its options and how many jobs it has in each state. */
const pools = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const db = systemDb(ctx);
    const out = [];
    for (const pool of await db.query('_pools').collect()) {
      const name = pool.name as string;
      const counts: Record<string, number> = {};
      let inUse = 0;
      for (const state of POOL_JOB_STATES) {
        const jobs = await db
          .query('_pool_jobs')
          .withIndex('by_due', byState(name, state))
          .take(COUNT_CAP);
        counts[state] = jobs.length;
        // Claimed ahead (a runner's local queue) is `running` too, but not started yet.
        if (state === 'running') inUse = jobs.filter((job) => job.startedAt !== undefined).length;
      }
      out.push({
        name,
        maxParallelism: pool.maxParallelism as number,
        paused: pool.paused === true,
        counts,
        inUse,
      });
    }
    return out;
  },
});

function outcomeOf(job: Doc): { kind: string; error?: string } | undefined {
  return job.result as { kind: string; error?: string } | undefined;
}

function listed(job: Doc) {
  const outcome = outcomeOf(job);
  return {
    id: job._id,
    name: job.name as string,
    fn: job.fn as string,
    state: job.state as string,
    attempt: job.attempt as number,
    enqueuedAt: job.enqueuedAt as number,
    startedAt: (job.startedAt as number | undefined) ?? null,
    finishedAt: (job.finishedAt as number | undefined) ?? null,
    outcome: outcome?.kind ?? null,
    error: outcome?.error ?? null,
  };
}

/** A pool's jobs in one state (optionally of one name), a page at a time. */
const jobs = internalQueryGeneric({
  args: {
    pool: v.string(),
    state: v.union(...POOL_JOB_STATES.map((state) => v.literal(state))),
    name: v.optional(v.string()),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { pool, state, name, paginationOpts }) => {
    const query = systemDb(ctx).query('_pool_jobs').withIndex('by_due', byState(pool, state));
    const result =
      name === undefined || name === ''
        ? await query.paginate(paginationOpts)
        : await query
            .filter((q) => q.eq(q.field('name'), name))
            .paginate(filteredPage(paginationOpts));
    return { ...result, page: result.page.map(listed) };
  },
});

function bytes(value: Value | undefined): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(convexToJson(value)));
}

async function jobById(db: LooseReader, id: string): Promise<Doc | null> {
  const normalized = db.normalizeId('_pool_jobs', id);
  return normalized === null ? null : await db.get(normalized);
}

async function edges(db: LooseReader, side: 'parent' | 'child', id: string, limit: number) {
  return await db
    .query('_pool_edges')
    .withIndex(side === 'parent' ? 'by_parent' : 'by_child', (q) => q.eq(side, id))
    .take(limit);
}

/** One job, as its page shows it: attempts, timings, sizes, and its neighbours in the graph. */
const job = internalQueryGeneric({
  args: { id: v.string() },
  handler: async (ctx, { id }) => {
    const db = systemDb(ctx);
    const job = await jobById(db, id);
    if (job === null) return null;
    const result = job.result as Record<string, Value> | undefined;
    const retry = job.retry as { maxAttempts: number } | null;
    return {
      ...listed(job),
      pool: job.pool as string,
      kind: job.kind as string,
      maxAttempts: retry?.maxAttempts ?? 1,
      due: job.due as number,
      priority: (job.priority as number | undefined) ?? 0,
      group: (job.group as string | undefined) ?? null,
      uniqueKey: (job.uniqueKey as string | undefined) ?? null,
      args: job.args,
      argsBytes: bytes(job.args),
      result: result ?? null,
      resultBytes: bytes(result?.returnValue),
      failures: job.failures as Value,
      onCompleteError: (job.onCompleteError as string | undefined) ?? null,
      dependsOn: (await edges(db, 'child', id, NEIGHBOURS_CAP)).map(
        (edge) => edge.parent as string,
      ),
      dependents: (await edges(db, 'parent', id, NEIGHBOURS_CAP)).map(
        (edge) => edge.child as string,
      ),
    };
  },
});

/** Every job connected to `id` by dependencies, both ways (up to GRAPH_CAP of them). */
const graph = internalQueryGeneric({
  args: { id: v.string() },
  handler: async (ctx, { id }) => {
    const db = systemDb(ctx);
    const nodes = new Map<string, ReturnType<typeof listed>>();
    const links = new Map<string, { parent: string; child: string }>();
    const queue = [id];
    let truncated = false;
    while (queue.length > 0) {
      const next = queue.shift()!;
      if (nodes.has(next)) continue;
      if (nodes.size >= GRAPH_CAP) {
        truncated = true;
        break;
      }
      const job = await jobById(db, next);
      if (job === null) continue;
      nodes.set(next, listed(job));
      for (const side of ['parent', 'child'] as const) {
        for (const edge of await edges(db, side, next, GRAPH_CAP)) {
          const parent = edge.parent as string;
          const child = edge.child as string;
          links.set(`${parent}>${child}`, { parent, child });
          queue.push(side === 'parent' ? child : parent);
        }
      }
    }
    return {
      nodes: [...nodes.values()],
      // Edges to jobs already gone (their results expired) are left out.
      edges: [...links.values()].filter((e) => nodes.has(e.parent) && nodes.has(e.child)),
      truncated,
    };
  },
});

/** Cancels pool jobs by id. */
const cancel = internalMutationGeneric({
  args: { ids: v.array(v.string()) },
  handler: async (_ctx, { ids }) => (await poolOp('cancel', { ids })) as number,
});

/** Pauses or resumes a pool (see Workpool.pause); resolves with whether it was paused. */
const setPaused = internalMutationGeneric({
  args: { pool: v.string(), paused: v.boolean() },
  handler: async (_ctx, { pool, paused }) =>
    (await poolOp('setPaused', { pool, paused })) as boolean,
});

/** Runs failed jobs again (the dead letters' retry), pool by pool. */
const retry = internalMutationGeneric({
  args: { ids: v.array(v.string()) },
  handler: async (ctx, { ids }) => {
    const db = systemDb(ctx);
    const byPool = new Map<string, string[]>();
    for (const id of ids) {
      const job = await jobById(db, id);
      if (job === null)
        throw new Error(`No pool job has the id "${id}" (its result may have expired)`);
      const pool = job.pool as string;
      byPool.set(pool, [...(byPool.get(pool) ?? []), job._id]);
    }
    let retried = 0;
    for (const [pool, poolIds] of byPool) {
      retried += (await poolOp('retryFailed', {
        pool,
        ids: poolIds,
        limit: poolIds.length,
      })) as number;
    }
    return retried;
  },
});

/** Runs a job again and everything downstream of it. */
const rerun = internalMutationGeneric({
  args: { id: v.string() },
  handler: async (_ctx, { id }) => await poolOp('rerun', { id }),
});

/** Starts, ends and start latency per second, as this server ran the pool's jobs (live). */
const stats = internalQueryGeneric({
  args: { pool: v.string(), seconds: v.optional(v.number()) },
  handler: async (_ctx, { pool, seconds }) =>
    await system('poolStats', { pool, seconds: seconds ?? 300 }),
});

export const POOLS = { pools, jobs, job, graph, cancel, setPaused, retry, rerun, stats };
