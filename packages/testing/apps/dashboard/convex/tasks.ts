/** A small task list: what the dashboard's Data, Functions, Logs and Schedules pages show. */
import { v } from 'convex/values';
import { api } from './_generated/api';
import type { Id } from './_generated/dataModel';
import { mutation, query } from './_generated/server';

export const add = mutation({
  args: { title: v.string(), priority: v.number(), done: v.optional(v.boolean()) },
  handler: async (ctx, { title, priority, done }) => {
    console.log(`adding ${title}`);
    return await ctx.db.insert('tasks', { title, priority, done: done ?? false });
  },
});

export const list = query({
  args: { done: v.optional(v.boolean()) },
  handler: async (ctx, { done }) =>
    done === undefined
      ? await ctx.db.query('tasks').collect()
      : await ctx.db
          .query('tasks')
          .withIndex('by_done', (q) => q.eq('done', done))
          .collect(),
});

/** Adds a task later: a scheduled function to watch (and cancel). */
export const addLater = mutation({
  args: { title: v.string(), delayMs: v.number() },
  handler: async (ctx, { title, delayMs }): Promise<Id<'_scheduled_functions'>> =>
    await ctx.scheduler.runAfter(delayMs, api.tasks.add, { title, priority: 1 }),
});

export const fail = mutation({
  args: { reason: v.string() },
  handler: (_ctx, { reason }) => {
    throw new Error(`failed on purpose: ${reason}`);
  },
});
