import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  counters: defineTable({ name: v.string(), value: v.number() }).index('by_name', ['name']),
  accounts: defineTable({ owner: v.string(), balance: v.number() }),
  /** One row per acknowledged client write: its key is the client's own, so duplicates show. */
  notes: defineTable({ key: v.string(), topic: v.string() })
    .index('by_key', ['key'])
    .index('by_topic', ['topic']),
  /** One row per run of a scheduled function, cron tick or pool job attempt. */
  runs: defineTable({ label: v.string(), i: v.number(), at: v.number() }).index('by_label', [
    'label',
  ]),
  /** When each pool job ran: its attempts' start and end. */
  spans: defineTable({
    label: v.string(),
    i: v.number(),
    start: v.number(),
    end: v.number(),
  }).index('by_label', ['label']),
});
