import { v } from 'convex/values';
import { mutation, query } from './_generated/server';
import { recordEvent } from './events';
import { kind } from './schema';

/** A new worker joins, ready to work. */
export const register = mutation({
  args: { kind, name: v.string() },
  returns: v.id('workers'),
  handler: async (ctx, { kind, name }) => {
    const id = await ctx.db.insert('workers', { kind, name, state: 'ready' });
    await recordEvent(ctx, { type: 'register', worker: id, kind });
    return id;
  },
});

/** What a worker is doing: it waits on this until Santa puts it to work, then until he lets it go. */
export const state = query({
  args: { id: v.id('workers') },
  handler: async (ctx, { id }) => (await ctx.db.get(id))?.state ?? null,
});

/** Back from vacation: ready again. */
export const backFromVacation = mutation({
  args: { id: v.id('workers') },
  handler: async (ctx, { id }) => {
    const worker = await ctx.db.get(id);
    if (worker === null) throw new Error(`No worker ${id}`);
    if (worker.state !== 'vacationing')
      throw new Error(`${worker.name} is ${worker.state}, not on vacation`);
    await ctx.db.patch(id, { state: 'ready' });
    await recordEvent(ctx, { type: 'ready', worker: id, kind: worker.kind });
  },
});
