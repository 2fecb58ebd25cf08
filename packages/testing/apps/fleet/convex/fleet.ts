/**
 * What the fleet tests drive through several servers on one PostgreSQL: counters and transfers
 * (serializable across processes), notes keyed by the client (acknowledged writes, exactly
 * once), scheduled functions, cron ticks and pool jobs (claimed once across the fleet).
 */
import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, mutation, query } from './_generated/server';

const pool = new Workpool('fleet', {
  maxParallelism: 3,
  retryActionsByDefault: true,
  defaultRetryBehavior: { maxAttempts: 5, initialBackoffMs: 100, base: 2 },
});

export const increment = mutation({
  args: { name: v.string() },
  handler: async (ctx, { name }) => {
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', name))
      .unique();
    if (counter === null) return await ctx.db.insert('counters', { name, value: 1 });
    await ctx.db.patch(counter._id, { value: counter.value + 1 });
    return counter._id;
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

export const balances = query({
  args: {},
  handler: async (ctx) => (await ctx.db.query('accounts').collect()).map((a) => a.balance),
});

export const addNote = mutation({
  args: { key: v.string(), topic: v.string() },
  handler: async (ctx, args) => await ctx.db.insert('notes', args),
});

/** The keys of a topic's notes, in insertion order. */
export const notes = query({
  args: { topic: v.string() },
  handler: async (ctx, { topic }) =>
    (
      await ctx.db
        .query('notes')
        .withIndex('by_topic', (q) => q.eq('topic', topic))
        .collect()
    ).map((note) => note.key),
});

export const scheduleMany = mutation({
  args: { label: v.string(), n: v.number(), delayMs: v.number() },
  handler: async (ctx, { label, n, delayMs }) => {
    for (let i = 0; i < n; i++) {
      await ctx.scheduler.runAfter(delayMs, internal.fleet.ran, { label, i });
    }
  },
});

export const ran = internalMutation({
  args: { label: v.string(), i: v.number() },
  handler: async (ctx, { label, i }) => {
    await ctx.db.insert('runs', { label, i, at: Date.now() });
  },
});

/** What ran under a label: each run's number and when. */
export const runs = query({
  args: { label: v.string() },
  handler: async (ctx, { label }) =>
    (
      await ctx.db
        .query('runs')
        .withIndex('by_label', (q) => q.eq('label', label))
        .collect()
    ).map(({ i, at }) => ({ i, at })),
});

export const enqueueSpans = mutation({
  args: { label: v.string(), n: v.number(), ms: v.number() },
  handler: async (ctx, { label, n, ms }): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push(await pool.enqueueAction(ctx, internal.fleet.span, { label, i, ms }));
    }
    return ids;
  },
});

/** A pool job that takes `ms`, recording when it started and ended. */
export const span = internalAction({
  args: { label: v.string(), i: v.number(), ms: v.number() },
  handler: async (ctx, { label, i, ms }) => {
    const start = Date.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    await ctx.runMutation(internal.fleet.recordSpan, { label, i, start, end: Date.now() });
  },
});

export const recordSpan = internalMutation({
  args: { label: v.string(), i: v.number(), start: v.number(), end: v.number() },
  handler: async (ctx, args) => {
    await ctx.db.insert('spans', args);
  },
});

export const spans = query({
  args: { label: v.string() },
  handler: async (ctx, { label }) =>
    (
      await ctx.db
        .query('spans')
        .withIndex('by_label', (q) => q.eq('label', label))
        .collect()
    ).map(({ i, start, end }) => ({ i, start, end })),
});

export const poolStatus = query({
  args: { ids: v.array(v.string()) },
  handler: async (ctx, { ids }) => await pool.statusBatch(ctx, ids as never),
});

export const tick = internalMutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert('runs', { label: 'tick', i: 0, at: Date.now() });
  },
});
