/**
 * Sleigh's own functions, for the admin dashboard and tools: internal queries under `_system/`,
 * reachable only with the admin key, over the same protocol as the app's functions (so a
 * dashboard subscribes to them and is pushed changes like any client). They are written with
 * `convex/server` like user code and read through the same syscalls; the two things user code
 * cannot see (the list of tables, the registry of functions) come from `sleigh/system/*`
 * syscalls that only these functions may make.
 */
import { internalQueryGeneric, paginationOptsValidator } from 'convex/server';
import { v, type JSONValue } from 'convex/values';

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

const STATES = [
  'waiting',
  'delayed',
  'pending',
  'running',
  'completing',
  'finished',
  'failed',
] as const;
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

/** The app's functions: path, kind, visibility and argument validator. */
const functions = internalQueryGeneric({
  args: {},
  handler: async () => await system('functions'),
});

/** The `_system/*` modules, as the registry takes modules. */
export const SYSTEM_MODULES = new Map<string, Record<string, unknown>>([
  ['_system/data', { tables, documents }],
  ['_system/pools', { pools }],
  ['_system/functions', { list: functions }],
]);
