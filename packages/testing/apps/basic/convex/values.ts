import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

export const store = mutation({
  args: {
    label: v.string(),
    big: v.optional(v.int64()),
    blob: v.optional(v.bytes()),
    float: v.optional(v.float64()),
    nested: v.optional(v.any()),
  },
  handler: async (ctx, args) => await ctx.db.insert('values', args),
});

export const get = query({
  args: { id: v.id('values') },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});

export const echo = query({
  args: { value: v.any() },
  handler: async (_ctx, { value }): Promise<unknown> => value as unknown,
});

export const byBig = query({
  args: { min: v.int64() },
  handler: async (ctx, { min }) =>
    await ctx.db
      .query('values')
      .withIndex('by_big', (q) => q.gte('big', min))
      .collect(),
});

export const badReturn = query({
  args: {},
  returns: v.number(),
  handler: async () => 'not a number' as unknown as number,
});

export const all = query({
  args: {},
  handler: async (ctx) => await ctx.db.query('values').collect(),
});
