/**
 * Sign-up with a verification email sent in the background, through `emailPool`: the enqueue
 * commits with the new user (or not at all), failed sends are retried, and an onComplete
 * mutation records how it ended on the user.
 */
import { NonRetryableError, vOnCompleteArgs, type WorkId } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, mutation, query } from './_generated/server';
import { emailPool } from './pools';

/** How often the pretend mail server says "try again later". */
const FLAKINESS = 0.2;

export const signUp = mutation({
  args: { name: v.string(), email: v.string() },
  handler: async (ctx, { name, email }): Promise<{ userId: string; workId: WorkId }> => {
    const userId = await ctx.db.insert('users', { name, email, emailStatus: 'pending' });
    const workId = await emailPool.enqueueAction(
      ctx,
      internal.auth.sendEmailVerification,
      { userId },
      { onComplete: internal.auth.emailDone, context: { userId }, name: `verify ${email}` },
    );
    await ctx.db.patch(userId, { emailWorkId: workId });
    return { userId, workId };
  },
});

/** Sends one verification email (pretend): slow, sometimes refused, and it bounces `.invalid`. */
export const sendEmailVerification = internalAction({
  args: { userId: v.id('users') },
  handler: async (ctx, { userId }): Promise<{ to: string; attempt: number }> => {
    const { to, attempt } = await ctx.runMutation(internal.auth.recordAttempt, { userId });
    await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 150));
    if (to.endsWith('.invalid')) {
      // Trying again cannot help: stop the retries right here.
      throw new NonRetryableError(`${to}: no such domain`);
    }
    if (Math.random() < FLAKINESS) {
      throw new Error(`mail server busy sending to ${to} (attempt ${attempt}), try again later`);
    }
    await ctx.runMutation(internal.auth.recordSent, { userId, attempt });
    return { to, attempt };
  },
});

/** Notes an attempt; resolves with the address and which attempt this is. */
export const recordAttempt = internalMutation({
  args: { userId: v.id('users') },
  handler: async (ctx, { userId }): Promise<{ to: string; attempt: number }> => {
    const user = await ctx.db.get(userId);
    if (user === null) throw new NonRetryableError(`user ${userId} is gone`);
    await ctx.db.insert('emailAttempts', { userId });
    const attempts = await ctx.db
      .query('emailAttempts')
      .withIndex('by_user', (q) => q.eq('userId', userId))
      .collect();
    return { to: user.email, attempt: attempts.length };
  },
});

/** Puts the email in the outbox, once per user however often the job is retried. */
export const recordSent = internalMutation({
  args: { userId: v.id('users'), attempt: v.number() },
  handler: async (ctx, { userId, attempt }) => {
    const user = await ctx.db.get(userId);
    if (user === null) return;
    const sent = await ctx.db
      .query('sentEmails')
      .withIndex('by_user', (q) => q.eq('userId', userId))
      .first();
    if (sent === null) await ctx.db.insert('sentEmails', { userId, to: user.email, attempt });
  },
});

/** The job's onComplete: runs once when the email job is done for good, with its result. */
export const emailDone = internalMutation({
  args: vOnCompleteArgs(v.object({ userId: v.id('users') })),
  handler: async (ctx, { context: { userId }, result }) => {
    if ((await ctx.db.get(userId)) === null) return;
    if (result.kind === 'success') {
      await ctx.db.patch(userId, { emailStatus: 'sent' });
    } else {
      await ctx.db.patch(userId, {
        emailStatus: 'failed',
        emailError: result.kind === 'failed' ? result.error : 'canceled',
      });
    }
  },
});

/**
 * Every user with where their verification email is, and how many attempts to send it have
 * started (with the job's status, that tells a job claimed by the pool from one really sending).
 */
export const users = query({
  args: {},
  handler: async (ctx) => {
    const attempts = new Map<string, number>();
    for (const { userId } of await ctx.db.query('emailAttempts').collect()) {
      attempts.set(userId, (attempts.get(userId) ?? 0) + 1);
    }
    const users = await ctx.db.query('users').collect();
    return users.map(({ _id, name, email, emailStatus, emailWorkId, emailError }) => ({
      _id,
      name,
      email,
      emailStatus,
      emailWorkId: emailWorkId ?? null,
      emailError: emailError ?? null,
      emailAttempts: attempts.get(_id) ?? 0,
    }));
  },
});

/** Who is in the outbox, and how many attempts it took: what a check compares with the users. */
export const emailStats = query({
  args: {},
  handler: async (ctx) => ({
    outbox: (await ctx.db.query('sentEmails').collect()).map((email) => email.userId),
    attempts: (await ctx.db.query('emailAttempts').collect()).length,
  }),
});
