import { v } from 'convex/values';
import type { Id } from './_generated/dataModel';
import { internalMutation, mutation, query, type QueryCtx } from './_generated/server';
import { recordEvent } from './events';

async function ready(ctx: QueryCtx, kind: 'reindeer' | 'elf') {
  return await ctx.db
    .query('workers')
    .withIndex('by_kind_state', (q) => q.eq('kind', kind).eq('state', 'ready'))
    .collect();
}

async function reindeerTotal(ctx: QueryCtx): Promise<number> {
  return (
    await ctx.db
      .query('workers')
      .withIndex('by_kind_state', (q) => q.eq('kind', 'reindeer'))
      .collect()
  ).length;
}

async function anyoneWorking(ctx: QueryCtx): Promise<boolean> {
  return (
    (await ctx.db
      .query('workers')
      .withIndex('by_state', (q) => q.eq('state', 'working'))
      .first()) !== null
  );
}

/** Which group Santa could take now: all the reindeer first, else three elves, else nobody. */
export const groupReady = query({
  args: {},
  handler: async (ctx): Promise<'reindeer' | 'elves' | null> => {
    if (await anyoneWorking(ctx)) return null;
    const reindeer = await ready(ctx, 'reindeer');
    const total = await reindeerTotal(ctx);
    if (total > 0 && reindeer.length === total) return 'reindeer';
    return (await ready(ctx, 'elf')).length >= 3 ? 'elves' : null;
  },
});

/**
 * Takes a group to work, atomically: every reindeer if all are ready, otherwise three elves.
 * Returns the group, or null when no group is ready (someone else's change won the race).
 */
export const dispatch = mutation({
  args: {},
  handler: async (ctx) => {
    const santa = await ctx.db.query('santa').first();
    if (santa?.current) throw new Error(`Group ${santa.current.group} is still at work`);
    if (await anyoneWorking(ctx)) throw new Error('Someone is working without Santa');
    const reindeer = await ready(ctx, 'reindeer');
    const elves = await ready(ctx, 'elf');
    const total = await reindeerTotal(ctx);
    let members: Id<'workers'>[];
    let kind: 'reindeer' | 'elf';
    if (total > 0 && reindeer.length === total) {
      kind = 'reindeer';
      members = reindeer.map((r) => r._id);
    } else if (elves.length >= 3) {
      kind = 'elf';
      members = elves.slice(0, 3).map((e) => e._id);
    } else {
      return null;
    }
    for (const id of members) await ctx.db.patch(id, { state: 'working' });
    const group = (santa?.groups ?? 0) + 1;
    const current = { group, kind, members };
    if (santa === null) await ctx.db.insert('santa', { groups: group, current });
    else await ctx.db.patch(santa._id, { groups: group, current });
    await recordEvent(ctx, {
      type: 'dispatch',
      group,
      kind,
      members,
      readyReindeer: reindeer.length,
      readyElves: elves.length,
      reindeerTotal: total,
    });
    return current;
  },
});

/** The group's work is done: everyone in it goes on vacation. */
export const release = mutation({
  args: {},
  handler: async (ctx) => {
    const santa = await ctx.db.query('santa').first();
    const current = santa?.current;
    if (!santa || !current) throw new Error('No group is at work');
    for (const id of current.members) await ctx.db.patch(id, { state: 'vacationing' });
    await ctx.db.patch(santa._id, { current: null });
    await recordEvent(ctx, {
      type: 'release',
      group: current.group,
      kind: current.kind,
      members: current.members,
    });
    return current.group;
  },
});

/** Santa's record, for the page. */
export const status = query({
  args: {},
  handler: async (ctx) => {
    const santa = await ctx.db.query('santa').first();
    return { groups: santa?.groups ?? 0, current: santa?.current ?? null };
  },
});

/** Clears the workshop for a fresh run, a batch at a time; returns true when it is empty. */
export const reset = internalMutation({
  args: { confirm: v.literal('reset') },
  handler: async (ctx): Promise<boolean> => {
    let budget = 2000;
    for (const table of ['workers', 'santa', 'events', 'eventCounter'] as const) {
      for (const doc of await ctx.db.query(table).take(budget)) {
        await ctx.db.delete(doc._id);
        budget--;
      }
      if (budget === 0) return false;
    }
    return true;
  },
});
