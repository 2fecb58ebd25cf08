import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  /** One row per run of a startup job. */
  boots: defineTable({ label: v.string(), at: v.number() }),
});
