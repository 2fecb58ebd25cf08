import { v } from 'convex/values';
import { mutation, query } from './_generated/server';

const DEFAULTS = { workMs: 800, vacationMs: 1500 };
const MAX_MS = 10_000;

export const get = query({
  args: {},
  handler: async (ctx) => {
    const speeds = await ctx.db.query('speeds').first();
    return speeds === null ? DEFAULTS : { workMs: speeds.workMs, vacationMs: speeds.vacationMs };
  },
});

export const set = mutation({
  args: { workMs: v.optional(v.number()), vacationMs: v.optional(v.number()) },
  handler: async (ctx, changes) => {
    for (const [name, value] of Object.entries(changes)) {
      if (!Number.isFinite(value) || value < 0 || value > MAX_MS) {
        throw new Error(`${name} must be between 0 and ${MAX_MS} ms, got ${value}`);
      }
    }
    const speeds = await ctx.db.query('speeds').first();
    if (speeds === null) await ctx.db.insert('speeds', { ...DEFAULTS, ...changes });
    else await ctx.db.patch(speeds._id, changes);
  },
});
