import { paginationOptsValidator } from 'convex/server';
import { query } from './_generated/server';

/** Everyone, and counts by kind and state: what the North Pole page shows. */
export const board = query({
  args: {},
  handler: async (ctx) => {
    const workers = await ctx.db.query('workers').collect();
    const counts: Record<string, number> = {};
    for (const worker of workers)
      counts[`${worker.kind}:${worker.state}`] =
        (counts[`${worker.kind}:${worker.state}`] ?? 0) + 1;
    const santa = await ctx.db.query('santa').first();
    return {
      workers: workers.map(({ _id, kind, name, state }) => ({ id: _id, kind, name, state })),
      counts,
      groups: santa?.groups ?? 0,
      current: santa?.current ?? null,
    };
  },
});

/** The event history, in order, a page at a time (for the checker). */
export const history = query({
  args: { paginationOpts: paginationOptsValidator },
  handler: async (ctx, { paginationOpts }) =>
    await ctx.db.query('events').withIndex('by_seq').paginate(paginationOpts),
});
