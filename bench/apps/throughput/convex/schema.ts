import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  items: defineTable({ k: v.number(), body: v.string() }).index('by_k', ['k']),
  counters: defineTable({ value: v.number() }),
});
