import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  /** One row per run of a scheduled function: what ran, when, with which label. */
  runs: defineTable({ label: v.string(), at: v.number(), attempt: v.optional(v.number()) }).index(
    'by_label',
    ['label'],
  ),
  counters: defineTable({ name: v.string(), value: v.number() }).index('by_name', ['name']),
});
