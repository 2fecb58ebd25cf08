import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export const kind = v.union(v.literal('reindeer'), v.literal('elf'));
export const state = v.union(v.literal('ready'), v.literal('working'), v.literal('vacationing'));

export default defineSchema({
  /** One document per actor: what it is and what it is doing. */
  workers: defineTable({ kind, name: v.string(), state })
    .index('by_kind_state', ['kind', 'state'])
    .index('by_state', ['state']),
  /** Santa's own record: the last group number and the group at work, if any. */
  santa: defineTable({
    groups: v.number(),
    current: v.union(
      v.null(),
      v.object({ group: v.number(), kind, members: v.array(v.id('workers')) }),
    ),
  }),
  /**
   * Every state change, written in the transaction that made it, numbered in commit order
   * (events.ts): what the checker replays.
   */
  events: defineTable({
    seq: v.number(),
    type: v.union(
      v.literal('register'),
      v.literal('ready'),
      v.literal('dispatch'),
      v.literal('release'),
    ),
    worker: v.optional(v.id('workers')),
    kind: v.optional(kind),
    group: v.optional(v.number()),
    members: v.optional(v.array(v.id('workers'))),
    readyReindeer: v.optional(v.number()),
    readyElves: v.optional(v.number()),
    reindeerTotal: v.optional(v.number()),
  }).index('by_seq', ['seq']),
  /** The next event's sequence number (a singleton). */
  eventCounter: defineTable({ next: v.number() }),
  /** The paces, in milliseconds: the longest a group works, the longest a vacation lasts. */
  speeds: defineTable({ workMs: v.number(), vacationMs: v.number() }),
});
