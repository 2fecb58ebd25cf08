import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

export const add = mutation({
  args: { table: v.string(), text: v.string() },
  handler: async (ctx, { table, text }) => await ctx.db.insert(table, { text }),
});

export const all = query({
  args: { table: v.string() },
  handler: async (ctx, { table }) =>
    (await ctx.db.query(table).collect()).map((doc) => (doc as { text?: unknown }).text as string),
});

export const normalize = query({
  args: { table: v.string(), id: v.string() },
  handler: async (ctx, { table, id }) => ctx.db.normalizeId(table, id),
});
