import { defineSchema, defineTable } from 'convex/server';
import { v } from 'convex/values';

/** Where a user's verification email is: waiting in the pool, delivered, or given up on. */
export const emailStatus = v.union(v.literal('pending'), v.literal('sent'), v.literal('failed'));

export default defineSchema({
  /** People who signed up; `emailWorkId` is their verification email's job in `emailPool`. */
  users: defineTable({
    name: v.string(),
    email: v.string(),
    emailStatus,
    emailWorkId: v.optional(v.string()),
    /** Why the email was given up on, when it was. */
    emailError: v.optional(v.string()),
  }),
  /** The outbox: one row per verification email actually sent (at most one per user). */
  sentEmails: defineTable({ userId: v.id('users'), to: v.string(), attempt: v.number() }).index(
    'by_user',
    ['userId'],
  ),
  /** One row per attempt to send (retries included), written when the attempt starts. */
  emailAttempts: defineTable({ userId: v.id('users') }).index('by_user', ['userId']),
  /** The latest scraped temperature per city. */
  weather: defineTable({ city: v.string(), temperatureC: v.number(), fetchedAt: v.number() }).index(
    'by_city',
    ['city'],
  ),
  /** Named counters, incremented only through `counterPool`. */
  counters: defineTable({ name: v.string(), value: v.number() }).index('by_name', ['name']),
});
