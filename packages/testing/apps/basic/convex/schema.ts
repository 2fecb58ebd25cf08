import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

export default defineSchema({
  messages: defineTable({
    channel: v.string(),
    author: v.string(),
    body: v.string(),
    likes: v.optional(v.number()),
  })
    .index('by_channel', ['channel'])
    .index('by_channel_author', ['channel', 'author']),
  counters: defineTable({ name: v.string(), value: v.number() }).index('by_name', ['name']),
  accounts: defineTable({ owner: v.string(), balance: v.number() }),
  values: defineTable({
    label: v.string(),
    big: v.optional(v.int64()),
    blob: v.optional(v.bytes()),
    float: v.optional(v.float64()),
    nested: v.optional(v.any()),
  }).index('by_big', ['big']),
});
