/**
 * A build graph held at a gate: fetch ─▶ compile, test ─▶ ship. Its steps wait until the gate
 * opens, so a test sees the graph pending and then watches it run to done.
 */
import { Workpool, type WorkId } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalQuery, mutation } from './_generated/server';

const builds = new Workpool('builds', { maxParallelism: 3 });

export const isOpen = internalQuery({
  args: { gate: v.string() },
  handler: async (ctx, { gate }) =>
    (
      await ctx.db
        .query('gates')
        .withIndex('by_name', (q) => q.eq('name', gate))
        .unique()
    )?.open === true,
});

export const step = internalAction({
  args: { label: v.string(), gate: v.string() },
  handler: async (ctx, { label, gate }): Promise<string> => {
    const deadline = Date.now() + 60_000;
    while (!(await ctx.runQuery(internal.builds.isOpen, { gate }))) {
      if (Date.now() > deadline) throw new Error(`${label}: the gate ${gate} never opened`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    console.log(`${label} done`);
    return label;
  },
});

export const start = mutation({
  args: { gate: v.string() },
  handler: async (ctx, { gate }): Promise<Record<string, WorkId>> => {
    await ctx.db.insert('gates', { name: gate, open: false });
    return await builds.enqueueGraph(ctx, {
      fetch: { action: internal.builds.step, args: { label: 'fetch', gate } },
      compile: {
        action: internal.builds.step,
        args: { label: 'compile', gate },
        dependsOn: ['fetch'],
      },
      test: { action: internal.builds.step, args: { label: 'test', gate }, dependsOn: ['fetch'] },
      ship: {
        action: internal.builds.step,
        args: { label: 'ship', gate },
        dependsOn: ['compile', 'test'],
      },
    });
  },
});

export const open = mutation({
  args: { gate: v.string() },
  handler: async (ctx, { gate }) => {
    const doc = await ctx.db
      .query('gates')
      .withIndex('by_name', (q) => q.eq('name', gate))
      .unique();
    if (doc !== null) await ctx.db.patch(doc._id, { open: true });
  },
});
