/**
 * The job benchmark's functions: a no-op action run through a pool of 10 (keeping results a day,
 * or none), enqueued in batches.
 * The bench runs the engine in its own process and listens on a global hook for handler starts.
 */
import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, mutation } from './_generated/server';

const pools = {
  bench: new Workpool('bench', { maxParallelism: 10 }),
  /** The same, keeping no result once a job is done (as graphile-worker deletes its jobs). */
  forgetful: new Workpool('forgetful', { maxParallelism: 10, ttl: 0 }),
};
const vPool = v.optional(v.union(v.literal('bench'), v.literal('forgetful')));

type Hook = (at: number) => void;

export const noop = internalAction({
  args: { i: v.number() },
  handler: async () => {
    (globalThis as { __sleighBenchStarted?: Hook }).__sleighBenchStarted?.(performance.now());
    return null;
  },
});

export const enqueueBatch = mutation({
  args: { from: v.number(), count: v.number(), pool: vPool },
  handler: async (ctx, { from, count, pool }) => {
    await pools[pool ?? 'bench'].enqueueActionBatch(
      internal.noop.noop,
      Array.from({ length: count }, (_, k) => ({ i: from + k })),
    );
  },
});

export const enqueueOne = mutation({
  args: { pool: vPool },
  handler: async (ctx, { pool }) => {
    await pools[pool ?? 'bench'].enqueueAction(internal.noop.noop, { i: -1 });
  },
});
