/**
 * The job benchmark's functions: a no-op action run through a pool of 10, enqueued in batches.
 * The bench runs the engine in its own process and listens on a global hook for handler starts.
 */
import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, mutation } from './_generated/server';

const pool = new Workpool('bench', { maxParallelism: 10 });

type Hook = (at: number) => void;

export const noop = internalAction({
  args: { i: v.number() },
  handler: async () => {
    (globalThis as { __sleighBenchStarted?: Hook }).__sleighBenchStarted?.(performance.now());
    return null;
  },
});

export const enqueueBatch = mutation({
  args: { from: v.number(), count: v.number() },
  handler: async (ctx, { from, count }) => {
    await pool.enqueueActionBatch(
      internal.noop.noop,
      Array.from({ length: count }, (_, k) => ({ i: from + k })),
    );
  },
});

export const enqueueOne = mutation({
  args: {},
  handler: async () => {
    await pool.enqueueAction(internal.noop.noop, { i: -1 });
  },
});
