import type { WithoutSystemFields } from 'convex/server';
import type { Doc } from './_generated/dataModel';
import type { MutationCtx } from './_generated/server';

/**
 * Appends an event to the history with the next sequence number. Every writer of an event reads
 * and bumps the one counter, so two of them never commit side by side and `seq` order is their
 * commit order. `_creationTime` would not do: it is when the mutation started, and on a
 * database that runs mutations side by side (PostgreSQL, or Convex) one that started first may
 * commit second.
 */
export async function recordEvent(
  ctx: MutationCtx,
  event: Omit<WithoutSystemFields<Doc<'events'>>, 'seq'>,
): Promise<void> {
  const counter = await ctx.db.query('eventCounter').first();
  const seq = counter?.next ?? 0;
  if (counter === null) await ctx.db.insert('eventCounter', { next: seq + 1 });
  else await ctx.db.patch(counter._id, { next: seq + 1 });
  await ctx.db.insert('events', { ...event, seq });
}
