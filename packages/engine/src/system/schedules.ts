/** `_system/schedules`: scheduled functions by state (with cancel) and the crons. */
import {
  internalMutationGeneric,
  internalQueryGeneric,
  paginationOptsValidator,
} from 'convex/server';
import { v, type JSONValue } from 'convex/values';
import { systemDb } from './syscall.js';

/** Scheduled functions in one state, newest first, a page at a time. */
const list = internalQueryGeneric({
  args: {
    state: v.union(
      v.literal('pending'),
      v.literal('inProgress'),
      v.literal('success'),
      v.literal('failed'),
      v.literal('canceled'),
    ),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { state, paginationOpts }) =>
    await systemDb(ctx)
      .query('_scheduled_functions')
      .withIndex('by_state_time', (q) => q.eq('state.kind', state))
      .order('desc')
      .paginate(paginationOpts),
});

/** Cancels a scheduled function (the dashboard's cancel button). */
const cancel = internalMutationGeneric({
  args: { id: v.id('_scheduled_functions') },
  handler: async (ctx, { id }) => {
    await ctx.scheduler.cancel(id);
  },
});

/** The crons of crons.ts, with their last and next runs. */
const crons = internalQueryGeneric({
  args: {},
  handler: async (ctx) =>
    (await systemDb(ctx).query('_cron_jobs').collect()).map((cron) => ({
      name: cron.name as string,
      function: cron.function as string,
      schedule: cron.schedule as JSONValue,
      lastRun: (cron.lastRun as number | null | undefined) ?? null,
      nextRun: cron.nextRun as number,
    })),
});

export const SCHEDULES = { list, cancel, crons };
