import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  tasks: defineTable({
    title: v.string(),
    priority: v.number(),
    done: v.boolean(),
  }).index('by_done', ['done']),
  /** Gates that hold a build's steps until a test opens them. */
  gates: defineTable({ name: v.string(), open: v.boolean() }).index('by_name', ['name']),
});
