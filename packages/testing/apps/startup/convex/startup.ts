/**
 * Startup jobs: a small graph declared in code, enqueued once per deploy (the jobby document's
 * "sentinel" jobs): fetch first, then process.
 */
import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, query } from './_generated/server';

const boot = new Workpool('boot', { maxParallelism: 2 });

export const warmUp = boot.startupJobs({
  fetch: { action: internal.startup.bootStep, args: { label: 'fetch' } },
  process: { action: internal.startup.bootStep, args: { label: 'process' }, dependsOn: ['fetch'] },
});

export const bootStep = internalAction({
  args: { label: v.string() },
  handler: async (ctx, { label }) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    await ctx.runMutation(internal.startup.logBoot, { label });
  },
});

export const logBoot = internalMutation({
  args: { label: v.string() },
  handler: async (ctx, { label }) => {
    await ctx.db.insert('boots', { label, at: Date.now() });
  },
});

export const boots = query({
  args: {},
  handler: async (ctx) => (await ctx.db.query('boots').collect()).map((boot) => boot.label),
});
