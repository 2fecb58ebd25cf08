import { v } from 'convex/values';
import { internalMutation } from './_generated/server';
import { counterPool, emailPool, scrapePool } from './pools';

/** A fresh start: cancels whatever a previous run left queued and empties every table. */
export const reset = internalMutation({
  args: { confirm: v.literal('reset') },
  handler: async (ctx): Promise<number> => {
    let canceled = 0;
    for (const pool of [emailPool, scrapePool, counterPool]) canceled += await pool.cancelAll(ctx);
    for (const table of ['users', 'sentEmails', 'emailAttempts', 'weather', 'counters'] as const) {
      for (const doc of await ctx.db.query(table).collect()) await ctx.db.delete(doc._id);
    }
    return canceled;
  },
});
