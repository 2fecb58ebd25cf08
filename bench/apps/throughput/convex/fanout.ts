import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

export const get = query({
  args: {},
  handler: async (ctx) => (await ctx.db.query('counters').first())?.value ?? 0,
});

export const set = mutation({
  args: { value: v.number() },
  handler: async (ctx, { value }) => {
    const existing = await ctx.db.query('counters').first();
    if (existing === null) await ctx.db.insert('counters', { value });
    else await ctx.db.patch(existing._id, { value });
  },
});
