/**
 * The fleet benchmark's functions: independent writes (one topic per client, so they never
 * conflict), the newest note of a topic (what a subscriber on another server watches), and a
 * no-op action through a pool of 10, enqueued in batches.
 */
import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, mutation, query } from './_generated/server';

const pool = new Workpool('bench', { maxParallelism: 10 });

export const add = mutation({
  args: { topic: v.string(), n: v.number() },
  handler: async (ctx, args) => {
    await ctx.db.insert('notes', args);
  },
});

export const latest = query({
  args: { topic: v.string() },
  handler: async (ctx, { topic }) =>
    (
      await ctx.db
        .query('notes')
        .withIndex('by_topic', (q) => q.eq('topic', topic))
        .order('desc')
        .first()
    )?.n ?? null,
});

export const noop = internalAction({
  args: { i: v.number() },
  handler: async () => null,
});

export const enqueueBatch = mutation({
  args: { from: v.number(), count: v.number() },
  handler: async (ctx, { from, count }) => {
    await pool.enqueueActionBatch(
      internal.fleet.noop,
      Array.from({ length: count }, (_, k) => ({ i: from + k })),
    );
  },
});
