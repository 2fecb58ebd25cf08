import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

export const insert = mutation({
  args: { k: v.number(), body: v.string() },
  handler: async (ctx, args) => await ctx.db.insert('items', args),
});

export const get = query({
  args: { id: v.id('items') },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});

export const range = query({
  args: { from: v.number() },
  handler: async (ctx, { from }) =>
    await ctx.db
      .query('items')
      .withIndex('by_k', (q) => q.gte('k', from))
      .take(100),
});
