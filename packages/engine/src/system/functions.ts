/**
 * Sleigh's own functions, for the admin dashboard and tools: internal queries under `_system/`,
 * reachable only with the admin key, over the same protocol as the app's functions (so a
 * dashboard subscribes to them and is pushed changes like any client). They are written with
 * `convex/server` like user code and read through the same syscalls; the two things user code
 * cannot see (the list of tables, the registry of functions) come from `sleigh/system/*`
 * syscalls that only these functions may make.
 */
import {
  internalMutationGeneric,
  internalQueryGeneric,
  paginationOptsValidator,
} from 'convex/server';
import { v, type JSONValue } from 'convex/values';
import { POOL_JOB_STATES } from '../jobs/pool-jobs.js';

interface ConvexGlobal {
  asyncSyscall(op: string, args: string): Promise<string>;
}

async function system(op: string, args: Record<string, JSONValue> = {}): Promise<JSONValue> {
  const convex = (globalThis as { Convex?: ConvexGlobal }).Convex!;
  return JSON.parse(
    await convex.asyncSyscall(`sleigh/system/${op}`, JSON.stringify(args)),
  ) as JSONValue;
}

type Counted = { count(): Promise<number> };

/** The app's tables with their document counts (live: a write to any table updates it). */
const tables = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const names = (await system('tables')) as string[];
    const out: Array<{ name: string; documents: number }> = [];
    for (const name of names) {
      out.push({ name, documents: await (ctx.db.query(name) as unknown as Counted).count() });
    }
    return out;
  },
});

/** A table's documents, newest first, a page at a time. */
const documents = internalQueryGeneric({
  args: { table: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, { table, paginationOpts }) =>
    await ctx.db.query(table).order('desc').paginate(paginationOpts),
});

const STATES = POOL_JOB_STATES;
/** Counts stop here: a dashboard shows "10,000+". */
const COUNT_CAP = 10_000;

/** Every workpool with its options and how many jobs it has in each state. */
const pools = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const db = ctx.db.system as unknown as {
      query(table: string): {
        collect(): Promise<Array<Record<string, unknown>>>;
        withIndex(
          index: string,
          range: (q: { eq(field: string, value: string): unknown }) => unknown,
        ): { take(n: number): Promise<unknown[]> };
      };
    };
    const out = [];
    for (const pool of await db.query('_pools').collect()) {
      const name = pool.name as string;
      const counts: Record<string, number> = {};
      for (const state of STATES) {
        const jobs = await db
          .query('_pool_jobs')
          .withIndex('by_due', (q) =>
            (q.eq('pool', name) as { eq(field: string, value: string): unknown }).eq(
              'state',
              state,
            ),
          )
          .take(COUNT_CAP);
        counts[state] = jobs.length;
      }
      out.push({
        name,
        maxParallelism: pool.maxParallelism as number,
        counts,
      });
    }
    return out;
  },
});

/** A pool's jobs in one state, a page at a time, as a list shows them. */
const jobs = internalQueryGeneric({
  args: {
    pool: v.string(),
    state: v.union(...STATES.map((state) => v.literal(state))),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { pool, state, paginationOpts }) => {
    const db = ctx.db.system as unknown as {
      query(table: string): {
        withIndex(
          index: string,
          range: (q: { eq(field: string, value: string): unknown }) => unknown,
        ): {
          paginate(options: typeof paginationOpts): Promise<{
            page: Array<Record<string, unknown>>;
            isDone: boolean;
            continueCursor: string;
          }>;
        };
      };
    };
    const result = await db
      .query('_pool_jobs')
      .withIndex('by_due', (q) =>
        (q.eq('pool', pool) as { eq(field: string, value: string): unknown }).eq('state', state),
      )
      .paginate(paginationOpts);
    return {
      ...result,
      page: result.page.map((job) => {
        const outcome = job.result as { kind: string; error?: string } | undefined;
        return {
          id: job._id as string,
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
      }),
    };
  },
});

/** Cancels pool jobs by id (the dashboard's cancel button). */
const cancelJobs = internalMutationGeneric({
  args: { ids: v.array(v.string()) },
  handler: async (_ctx, { ids }) => (await pool('cancel', { ids })) as number,
});

/** Scheduled functions in one state, newest first, a page at a time. */
const scheduled = internalQueryGeneric({
  args: {
    state: v.union(
      v.literal('pending'),
      v.literal('inProgress'),
      v.literal('success'),
      v.literal('failed'),
      v.literal('canceled'),
    ),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { state, paginationOpts }) => {
    const db = ctx.db.system as unknown as {
      query(table: string): {
        withIndex(
          index: string,
          range: (q: { eq(field: string, value: string): unknown }) => unknown,
        ): {
          order(order: 'desc'): {
            paginate(options: typeof paginationOpts): Promise<unknown>;
          };
        };
      };
    };
    return await db
      .query('_scheduled_functions')
      .withIndex('by_state_time', (q) => q.eq('state.kind', state))
      .order('desc')
      .paginate(paginationOpts);
  },
});

/** Cancels a scheduled function (the dashboard's cancel button). */
const cancelScheduled = internalMutationGeneric({
  args: { id: v.id('_scheduled_functions') },
  handler: async (ctx, { id }) => {
    await ctx.scheduler.cancel(id);
  },
});

/** The crons of crons.ts, with their last and next runs. */
const crons = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const db = ctx.db.system as unknown as {
      query(table: string): { collect(): Promise<Array<Record<string, unknown>>> };
    };
    return (await db.query('_cron_jobs').collect()).map((cron) => ({
      name: cron.name as string,
      function: cron.function as string,
      schedule: cron.schedule as JSONValue,
      lastRun: (cron.lastRun as number | null | undefined) ?? null,
      nextRun: cron.nextRun as number,
    }));
  },
});

async function pool(op: string, args: Record<string, JSONValue>): Promise<JSONValue> {
  const convex = (globalThis as { Convex?: ConvexGlobal }).Convex!;
  return JSON.parse(
    await convex.asyncSyscall(`sleigh/pool/${op}`, JSON.stringify(args)),
  ) as JSONValue;
}

/** The app's functions: path, kind, visibility and argument validator. */
const functions = internalQueryGeneric({
  args: {},
  handler: async () => await system('functions'),
});

/** The `_system/*` modules, as the registry takes modules. */
export const SYSTEM_MODULES = new Map<string, Record<string, unknown>>([
  ['_system/data', { tables, documents }],
  ['_system/pools', { pools, jobs, cancel: cancelJobs }],
  ['_system/schedules', { list: scheduled, cancel: cancelScheduled, crons }],
  ['_system/functions', { list: functions }],
]);
