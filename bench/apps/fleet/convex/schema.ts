import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  notes: defineTable({ topic: v.string(), n: v.number() }).index('by_topic', ['topic']),
});
