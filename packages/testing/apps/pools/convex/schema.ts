import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  /** What pool jobs did: one row per attempt of `work`, and per `bump`. */
  events: defineTable({
    label: v.string(),
    at: v.number(),
    peak: v.optional(v.number()),
  }).index('by_label', ['label']),
  counters: defineTable({ name: v.string(), value: v.number() }).index('by_name', ['name']),
  /** One row per onComplete call. */
  completions: defineTable({ workId: v.string(), context: v.any(), result: v.any() }),
  /** Named on/off switches the tests flip (a step fails while its switch is on). */
  switches: defineTable({ name: v.string(), on: v.boolean() }).index('by_name', ['name']),
  /** One row per run of a graph step: when it ran and what its dependencies returned. */
  steps: defineTable({
    label: v.string(),
    start: v.number(),
    end: v.number(),
    inputs: v.array(v.string()),
  }).index('by_label', ['label']),
});
