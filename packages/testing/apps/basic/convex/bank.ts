import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

export const increment = mutation({
  args: { name: v.string() },
  handler: async (ctx, { name }) => {
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', name))
      .unique();
    if (counter === null) {
      await ctx.db.insert('counters', { name, value: 1 });
      return 1;
    }
    await ctx.db.patch(counter._id, { value: counter.value + 1 });
    return counter.value + 1;
  },
});

export const counter = query({
  args: { name: v.string() },
  handler: async (ctx, { name }) =>
    (
      await ctx.db
        .query('counters')
        .withIndex('by_name', (q) => q.eq('name', name))
        .unique()
    )?.value ?? 0,
});

export const open = mutation({
  args: { owner: v.string(), balance: v.number() },
  handler: async (ctx, args) => await ctx.db.insert('accounts', args),
});

export const transfer = mutation({
  args: { from: v.id('accounts'), to: v.id('accounts'), amount: v.number() },
  handler: async (ctx, { from, to, amount }) => {
    const source = await ctx.db.get(from);
    const target = await ctx.db.get(to);
    if (source === null || target === null) throw new Error('no such account');
    if (source.balance < amount) return false;
    await ctx.db.patch(from, { balance: source.balance - amount });
    await ctx.db.patch(to, { balance: target.balance + amount });
    return true;
  },
});

export const total = query({
  args: {},
  handler: async (ctx) =>
    (await ctx.db.query('accounts').collect()).reduce((sum, a) => sum + a.balance, 0),
});
