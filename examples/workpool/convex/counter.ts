/**
 * A singleton counter incremented from an action, many increments at once. Every increment is a
 * read-modify-write of the same document, so run side by side they would conflict (and be
 * retried, or fail); through `counterPool` (parallelism 1) they run one after another instead.
 */
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { action, internalMutation, query } from './_generated/server';
import { counterPool } from './pools';

const NAME = 'clicks';

export const increment = internalMutation({
  args: {},
  handler: async (ctx): Promise<number> => {
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', NAME))
      .unique();
    const value = (counter?.value ?? 0) + 1;
    if (counter === null) await ctx.db.insert('counters', { name: NAME, value });
    else await ctx.db.patch(counter._id, { value });
    return value;
  },
});

/** Fires `times` increments concurrently through the pool; resolves with the values they saw. */
export const incrementMany = action({
  args: { times: v.number() },
  handler: async (ctx, { times }): Promise<number[]> => {
    // poolCtx has the same interface as ctx, but its runMutation, runAction and scheduler go
    // through the pool: each call is a pool job, and it resolves with the job's return value.
    const poolCtx = counterPool.ctx(ctx);
    return await Promise.all(
      Array.from({ length: times }, () => poolCtx.runMutation(internal.counter.increment, {})),
    );
  },
});

export const get = query({
  args: {},
  handler: async (ctx): Promise<number> =>
    (
      await ctx.db
        .query('counters')
        .withIndex('by_name', (q) => q.eq('name', NAME))
        .unique()
    )?.value ?? 0,
});
