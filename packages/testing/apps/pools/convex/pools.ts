/**
 * Workpools under test: parallelism, retries, timeouts, results, onComplete, cancellation,
 * pool.ctx, and isolation between pools.
 */
import {
  NonRetryableError,
  vOnCompleteArgs,
  Workpool,
  type EnqueueOptions,
  type WorkId,
} from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import {
  action,
  internalAction,
  internalMutation,
  internalQuery,
  mutation,
  query,
} from './_generated/server';

const DAY_MS = 24 * 60 * 60 * 1000;

const pools = {
  narrow: new Workpool('narrow', { maxParallelism: 3 }),
  flood: new Workpool('flood', { maxParallelism: 2 }),
  other: new Workpool('other', { maxParallelism: 2 }),
  retrying: new Workpool('retrying', {
    maxParallelism: 5,
    retryActionsByDefault: true,
    defaultRetryBehavior: { maxAttempts: 3, initialBackoffMs: 50, base: 2 },
  }),
  counter: new Workpool('counter', { maxParallelism: 1 }),
  timeouts: new Workpool('timeouts', { maxParallelism: 5, actionTimeoutMs: 150 }),
  brief: new Workpool('brief', { maxParallelism: 5, ttl: 300 }),
  /** Keeps nothing once a job is done, as graphile-worker. */
  forgetful: new Workpool('forgetful', { maxParallelism: 5, ttl: 0, failedTtl: 0 }),
  wide: new Workpool('wide', { maxParallelism: 10 }),
  // Longer than a Node timer can wait (2^31 - 1 ms).
  patient: new Workpool('patient', {
    maxParallelism: 2,
    actionTimeoutMs: 30 * DAY_MS,
    heartbeatTimeoutMs: 30 * DAY_MS,
  }),
};
type PoolName = keyof typeof pools;
const vPool = v.union(...Object.keys(pools).map((name) => v.literal(name as PoolName)));

/** Actions running right now in this process, by label: how many, and the most at once. */
const active = new Map<string, { now: number; peak: number }>();

export const work = internalAction({
  args: {
    label: v.string(),
    ms: v.number(),
    failTimes: v.optional(v.number()),
    nonRetryable: v.optional(v.boolean()),
  },
  handler: async (ctx, { label, ms, failTimes, nonRetryable }): Promise<string> => {
    const seen = active.get(label) ?? { now: 0, peak: 0 };
    active.set(label, seen);
    seen.now++;
    seen.peak = Math.max(seen.peak, seen.now);
    try {
      const attempt: number = await ctx.runMutation(internal.pools.record, { label });
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (nonRetryable === true) throw new NonRetryableError(`${label}: this cannot work`);
      if (attempt <= (failTimes ?? 0)) throw new Error(`${label}: attempt ${attempt} failed`);
      return `${label} done`;
    } finally {
      seen.now--;
      await ctx.runMutation(internal.pools.recordPeak, { label, peak: seen.peak });
    }
  },
});

/** Records an attempt; resolves with how many attempts the label has had. */
export const record = internalMutation({
  args: { label: v.string() },
  handler: async (ctx, { label }): Promise<number> => {
    await ctx.db.insert('events', { label, at: Date.now() });
    return (
      await ctx.db
        .query('events')
        .withIndex('by_label', (q) => q.eq('label', label))
        .collect()
    ).filter((event) => event.peak === undefined).length;
  },
});

export const recordPeak = internalMutation({
  args: { label: v.string(), peak: v.number() },
  handler: async (ctx, { label, peak }) => {
    await ctx.db.insert('events', { label: `${label}:peak`, at: Date.now(), peak });
  },
});

/** A read-modify-write of one counter: conflicts when run in parallel, not in a pool of 1. */
export const bump = internalMutation({
  args: { name: v.string(), fail: v.optional(v.boolean()) },
  handler: async (ctx, { name, fail }): Promise<number> => {
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', name))
      .unique();
    const value = (counter?.value ?? 0) + 1;
    if (counter === null) await ctx.db.insert('counters', { name, value });
    else await ctx.db.patch(counter._id, { value });
    if (fail === true) throw new Error(`bump ${name} refused`);
    return value;
  },
});

export const readCounter = internalQuery({
  args: { name: v.string() },
  handler: async (ctx, { name }): Promise<number> =>
    (
      await ctx.db
        .query('counters')
        .withIndex('by_name', (q) => q.eq('name', name))
        .unique()
    )?.value ?? 0,
});

export const onDone = internalMutation({
  args: vOnCompleteArgs(),
  handler: async (ctx, args) => {
    await ctx.db.insert('completions', args);
  },
});

export const onDoneLabeled = internalMutation({
  args: vOnCompleteArgs(v.object({ label: v.string() })),
  handler: async (ctx, { workId, context, result }) => {
    await ctx.db.insert('completions', { workId, context, result });
  },
});

export const enqueueWork = mutation({
  args: {
    pool: vPool,
    label: v.string(),
    ms: v.number(),
    count: v.optional(v.number()),
    failTimes: v.optional(v.number()),
    nonRetryable: v.optional(v.boolean()),
    retry: v.optional(v.boolean()),
    onComplete: v.optional(v.boolean()),
    runAfter: v.optional(v.number()),
    thenThrow: v.optional(v.boolean()),
  },
  handler: async (ctx, args): Promise<WorkId[]> => {
    const { pool, count, retry, onComplete, runAfter, thenThrow, ...work } = args;
    const options = {
      ...(retry === undefined ? {} : { retry }),
      ...(runAfter === undefined ? {} : { runAfter }),
      ...(onComplete === true
        ? { onComplete: internal.pools.onDone, context: { label: work.label } }
        : {}),
    };
    const ids =
      count === undefined
        ? [await pools[pool].enqueueAction(ctx, internal.pools.work, work, options)]
        : await pools[pool].enqueueActionBatch(
            internal.pools.work,
            Array.from({ length: count }, () => work),
            options,
          );
    if (thenThrow === true) throw new Error('changed my mind');
    return ids;
  },
});

/** `narrow` as a new version of the code declares it (wider): its first enqueue rewrites the options. */
const narrowWidened = new Workpool('narrow', { maxParallelism: 4 });

export const enqueueWidened = mutation({
  args: { label: v.string() },
  handler: async (ctx, { label }): Promise<WorkId> =>
    await narrowWidened.enqueueAction(ctx, internal.pools.work, { label, ms: 1 }),
});

export const enqueueBumps = mutation({
  args: {
    pool: vPool,
    name: v.string(),
    count: v.number(),
    fail: v.optional(v.boolean()),
    onComplete: v.optional(v.boolean()),
  },
  handler: async (ctx, { pool, name, count, fail, onComplete }): Promise<WorkId[]> =>
    await pools[pool].enqueueMutationBatch(
      internal.pools.bump,
      Array.from({ length: count }, () => ({ name, ...(fail === true ? { fail } : {}) })),
      onComplete === true ? { onComplete: internal.pools.onDone, context: name } : {},
    ),
});

export const enqueueRead = mutation({
  args: { name: v.string() },
  handler: async (ctx, { name }): Promise<WorkId> =>
    await pools.narrow.enqueueQuery(internal.pools.readCounter, { name }),
});

/** Bad calls, each refused with a clear error. */
/** One small job into `narrow`, with `options` (the bad enqueues below vary only those). */
const enqueueNarrow = (options: EnqueueOptions): Promise<WorkId> =>
  pools.narrow.enqueueAction(internal.pools.work, { label: 'x', ms: 1 }, options);

export const enqueueBad = mutation({
  args: { what: v.string() },
  handler: async (ctx, { what }): Promise<WorkId> => {
    switch (what) {
      case 'wrong kind':
        // @ts-expect-error: a mutation enqueued as an action.
        return await pools.narrow.enqueueAction(internal.pools.bump, { name: 'x' });
      case 'bad args':
        // @ts-expect-error: ms must be a number.
        return await pools.narrow.enqueueAction(internal.pools.work, { label: 'x', ms: 'soon' });
      case 'bad pool':
        return await new Workpool('no spaces allowed').enqueueAction(internal.pools.work, {
          label: 'x',
          ms: 1,
        });
      case 'retry not a policy':
        // @ts-expect-error: retry is true, false or a policy.
        return await enqueueNarrow({ retry: 3 });
      case 'too far off':
        return await enqueueNarrow({ runAfter: 6 * 365 * DAY_MS });
      case 'runAfter NaN':
        return await enqueueNarrow({ runAfter: NaN });
      case 'name not a string':
        // @ts-expect-error: a name is a string.
        return await enqueueNarrow({ name: 5 });
      case 'timeout 0':
        return await new Workpool('instant', { actionTimeoutMs: 0 }).enqueueAction(
          internal.pools.work,
          { label: 'x', ms: 1 },
        );
      case 'parallelism NaN':
        return await new Workpool('nan', { maxParallelism: NaN }).enqueueAction(
          internal.pools.work,
          { label: 'x', ms: 1 },
        );
      case 'limit beyond int64':
        await pools.narrow.cancelAll({ limit: 1e20 });
        throw new Error('cancelAll took a limit of 1e20');
      case 'function undefined':
        // What a JavaScript app passes when it misspells an import.
        return await pools.narrow.enqueueAction(
          undefined as unknown as typeof internal.pools.work,
          { label: 'x', ms: 1 },
        );
      case 'args leave no room':
        return await pools.narrow.enqueueAction(internal.pools.work, {
          label: 'x'.repeat(1_040_000),
          ms: 1,
        });
      case 'backoff beyond 5 years':
        return await enqueueNarrow({
          retry: { maxAttempts: 3, initialBackoffMs: 1e308, base: 2 },
        });
      case 'context not as onComplete takes it':
        return await pools.narrow.enqueueAction(
          internal.pools.work,
          { label: 'x', ms: 1 },
          { onComplete: internal.pools.onDoneLabeled, context: 5 },
        );
      case 'bad parallelism':
        return await new Workpool('zero', { maxParallelism: 0 }).enqueueAction(
          internal.pools.work,
          {
            label: 'x',
            ms: 1,
          },
        );
      default:
        throw new Error(`unknown case ${what}`);
    }
  },
});

/** Returns a string of `bytes` characters, or throws an error that long. */
export const sized = internalAction({
  args: { bytes: v.number(), fail: v.optional(v.boolean()) },
  handler: async (_ctx, { bytes, fail }): Promise<string> => {
    if (fail === true) throw new Error('e'.repeat(bytes));
    return 'x'.repeat(bytes);
  },
});

export const enqueueSized = mutation({
  args: { pool: vPool, bytes: v.number(), fail: v.optional(v.boolean()) },
  handler: async (ctx, { pool, bytes, fail }): Promise<WorkId> =>
    await pools[pool].enqueueAction(ctx, internal.pools.sized, {
      bytes,
      ...(fail === undefined ? {} : { fail }),
    }),
});

/** Takes large arguments and does nothing with them. */
export const padded = internalAction({
  args: { pad: v.string() },
  handler: async () => null,
});

/**
 * Enqueues (or schedules) `count` jobs with `kib` KiB of arguments each, in one mutation: past
 * 16 MiB it fails, as a mutation writing that much would.
 */
export const enqueuePadded = mutation({
  args: {
    count: v.number(),
    kib: v.number(),
    via: v.union(v.literal('pool'), v.literal('scheduler')),
  },
  handler: async (ctx, { count, kib, via }) => {
    const pad = 'x'.repeat(kib * 1024);
    for (let i = 0; i < count; i++) {
      if (via === 'pool') await pools.wide.enqueueAction(ctx, internal.pools.padded, { pad });
      else await ctx.scheduler.runAfter(60_000, internal.pools.padded, { pad });
    }
  },
});

/** Many jobs that do next to nothing (`sized` of one byte), in one batch. */
export const enqueueQuick = mutation({
  args: { pool: vPool, count: v.number() },
  handler: async (ctx, { pool, count }): Promise<WorkId[]> =>
    await pools[pool].enqueueActionBatch(
      internal.pools.sized,
      Array.from({ length: count }, () => ({ bytes: 1 })),
    ),
});

export const enqueueFromQuery = query({
  args: {},
  handler: async (): Promise<WorkId> =>
    await pools.narrow.enqueueAction(internal.pools.work, { label: 'q', ms: 1 }),
});

/** Enqueues one job and cancels it in the same mutation: it must never run. */
export const enqueueAndCancel = mutation({
  args: { pool: vPool, label: v.string() },
  handler: async (ctx, { pool, label }): Promise<WorkId> => {
    const id = await pools[pool].enqueueAction(ctx, internal.pools.work, { label, ms: 1 });
    await pools[pool].cancel(ctx, id);
    return id;
  },
});

/** Enqueues two jobs one at a time, then fails: nothing of it may stay, nor be remembered. */
export const enqueueTwiceThenFail = mutation({
  args: { pool: vPool, label: v.string() },
  handler: async (ctx, { pool, label }) => {
    await pools[pool].enqueueAction(ctx, internal.pools.work, { label, ms: 1 });
    await pools[pool].enqueueAction(ctx, internal.pools.work, { label, ms: 1 });
    throw new Error('changed my mind');
  },
});

export const cancel = mutation({
  args: { pool: vPool, id: v.string() },
  handler: async (ctx, { pool, id }) => {
    await pools[pool].cancel(ctx, id as WorkId);
  },
});

export const cancelAll = mutation({
  args: { pool: vPool },
  handler: async (ctx, { pool }): Promise<number> => await pools[pool].cancelAll(ctx),
});

/** Pauses or resumes a pool; resolves with whether it was paused. */
export const setPaused = mutation({
  args: { pool: vPool, paused: v.boolean() },
  handler: async (ctx, { pool, paused }): Promise<boolean> =>
    paused ? await pools[pool].pause(ctx) : await pools[pool].resume(ctx),
});

export const status = query({
  args: { pool: vPool, ids: v.array(v.string()) },
  handler: async (ctx, { pool, ids }) => await pools[pool].statusBatch(ctx, ids as WorkId[]),
});

export const result = query({
  args: { pool: vPool, id: v.string() },
  handler: async (ctx, { pool, id }) => await pools[pool].result(ctx, id as WorkId),
});

export const wait = action({
  args: { pool: vPool, id: v.string() },
  handler: async (ctx, { pool, id }) => await pools[pool].pollResult(ctx, id as WorkId),
});

/** Increments through the pool of one from an action: no conflicts, every value once. */
export const countThroughPool = action({
  args: { name: v.string(), times: v.number() },
  handler: async (ctx, { name, times }): Promise<number[]> => {
    const poolCtx = pools.counter.ctx(ctx);
    const values = await Promise.all(
      Array.from({ length: times }, () => poolCtx.runMutation(internal.pools.bump, { name })),
    );
    await poolCtx.scheduler.runAfter(50, internal.pools.bump, { name });
    return values;
  },
});

export const events = query({
  args: { label: v.string() },
  handler: async (ctx, { label }) =>
    await ctx.db
      .query('events')
      .withIndex('by_label', (q) => q.eq('label', label))
      .collect(),
});

export const completions = query({
  args: {},
  handler: async (ctx) => await ctx.db.query('completions').collect(),
});

export const counter = query({
  args: { name: v.string() },
  handler: async (ctx, { name }): Promise<number> =>
    (
      await ctx.db
        .query('counters')
        .withIndex('by_name', (q) => q.eq('name', name))
        .unique()
    )?.value ?? 0,
});

/** Sleigh's `_pool_jobs` table (Convex's types know only their own system tables). */
export const jobs = query({
  args: {},
  handler: async (ctx) =>
    await ctx.db.system.query('_pool_jobs' as '_scheduled_functions').collect(),
});

/** Every scheduled function, in any state. */
export const scheduledAll = query({
  args: {},
  handler: async (ctx) => await ctx.db.system.query('_scheduled_functions').collect(),
});
