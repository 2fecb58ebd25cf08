import { paginationOptsValidator } from 'convex/server';
import { v } from 'convex/values';
import type { Id } from './_generated/dataModel';
import { internal } from './_generated/api';
import { action, internalAction, internalMutation, mutation, query } from './_generated/server';

/** Schedules `record` after `delayMs`; with `thenThrow`, the mutation fails after scheduling. */
export const later = mutation({
  args: { label: v.string(), delayMs: v.number(), thenThrow: v.optional(v.boolean()) },
  handler: async (ctx, { label, delayMs, thenThrow }): Promise<Id<'_scheduled_functions'>> => {
    const id = await ctx.scheduler.runAfter(delayMs, internal.scheduling.record, { label });
    if (thenThrow === true) throw new Error('changed my mind');
    return id;
  },
});

/** Schedules `record` at an absolute time (ms since the epoch). */
export const at = mutation({
  args: { label: v.string(), time: v.number() },
  handler: async (ctx, { label, time }): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAt(time, internal.scheduling.record, { label }),
});

/** Takes any arguments (no validator): for crons whose arguments are what is tested. */
export const anything = internalMutation({
  handler: async () => {},
});

export const record = internalMutation({
  args: { label: v.string() },
  handler: async (ctx, { label }) => {
    await ctx.db.insert('runs', { label, at: Date.now() });
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', label))
      .unique();
    if (counter === null) await ctx.db.insert('counters', { name: label, value: 1 });
    else await ctx.db.patch(counter._id, { value: counter.value + 1 });
  },
});

export const failing = internalMutation({
  args: {},
  handler: async () => {
    throw new Error('this scheduled mutation always fails');
  },
});

export const scheduleFailing = mutation({
  args: {},
  handler: async (ctx): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAfter(0, internal.scheduling.failing, {}),
});

/** An action that waits `ms`, then records a run; with `fail`, throws instead. */
export const work = internalAction({
  args: { label: v.string(), ms: v.number(), fail: v.optional(v.boolean()) },
  handler: async (ctx, { label, ms, fail }) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (fail === true) throw new Error(`work ${label} failed`);
    await ctx.runMutation(internal.scheduling.record, { label });
    return label;
  },
});

/** An action that awaits what nothing resolves: only the runner's time limit ends it. */
export const hang = internalAction({
  args: {},
  handler: async () => {
    await new Promise(() => undefined);
  },
});

export const scheduleHang = mutation({
  args: {},
  handler: async (ctx): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAfter(0, internal.scheduling.hang, {}),
});

export const scheduleWork = mutation({
  args: {
    label: v.string(),
    ms: v.number(),
    fail: v.optional(v.boolean()),
    delayMs: v.optional(v.number()),
  },
  handler: async (ctx, { delayMs, ...args }): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAfter(delayMs ?? 0, internal.scheduling.work, args),
});

/** ctx.scheduler from an action: a transaction of its own. */
export const fromAction = action({
  args: { label: v.string() },
  handler: async (ctx, { label }): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAfter(0, internal.scheduling.record, { label }),
});

export const cancel = mutation({
  args: { id: v.id('_scheduled_functions') },
  handler: async (ctx, { id }) => {
    await ctx.scheduler.cancel(id);
  },
});

export const cancelFromAction = action({
  args: { id: v.id('_scheduled_functions') },
  handler: async (ctx, { id }) => {
    await ctx.scheduler.cancel(id);
  },
});

/** Schedules `count` runs at once (Convex caps this at 1000 per call). */
export const many = mutation({
  args: { label: v.string(), count: v.number() },
  handler: async (ctx, { label, count }) => {
    for (let i = 0; i < count; i++) {
      await ctx.scheduler.runAfter(0, internal.scheduling.record, { label });
    }
  },
});

export const scheduleQuery = mutation({
  args: {},
  handler: async (ctx) => {
    // @ts-expect-error: queries cannot be scheduled, and Sleigh says so at run time too.
    await ctx.scheduler.runAfter(0, internal.scheduling.count, {});
  },
});

export const count = query({
  args: { label: v.string() },
  handler: async (ctx, { label }) => {
    const counter = await ctx.db
      .query('counters')
      .withIndex('by_name', (q) => q.eq('name', label))
      .unique();
    return counter?.value ?? 0;
  },
});

export const runs = query({
  args: { label: v.string() },
  handler: async (ctx, { label }) =>
    await ctx.db
      .query('runs')
      .withIndex('by_label', (q) => q.eq('label', label))
      .collect(),
});

/** The scheduled functions, as apps read them on Convex. */
export const scheduled = query({
  args: {},
  handler: async (ctx) => await ctx.db.system.query('_scheduled_functions').collect(),
});

export const scheduledPage = query({
  args: { paginationOpts: paginationOptsValidator },
  handler: async (ctx, { paginationOpts }) =>
    await ctx.db.system.query('_scheduled_functions').paginate(paginationOpts),
});

export const scheduledOne = query({
  args: { id: v.id('_scheduled_functions') },
  handler: async (ctx, { id }) => await ctx.db.system.get(id),
});

/**
 * Sleigh's `_cron_jobs` table. Convex's types know only its own system tables, so the name is
 * cast; the documents are Sleigh's (name, function, args, schedule, lastRun, nextRun).
 */
export const crons = query({
  args: {},
  handler: async (ctx) =>
    await ctx.db.system.query('_cron_jobs' as '_scheduled_functions').collect(),
});
