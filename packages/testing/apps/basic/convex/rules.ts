import { v } from 'convex/values';
import { action, mutation, query } from './_generated/server';
import { api, internal } from './_generated/api';

export const random = query({
  args: { salt: v.string() },
  handler: async () => ({
    draws: [Math.random(), Math.random(), Math.random()],
    now: Date.now(),
    date: new Date().getTime(),
  }),
});

export const writeInQuery = query({
  args: {},
  handler: async (ctx) => {
    // @ts-expect-error queries have no insert; call it anyway to see the error
    // eslint-disable-next-line @typescript-eslint/no-unsafe-call -- the call is the point of the test
    await ctx.db.insert('messages', { channel: 'x', author: 'x', body: 'x' });
  },
});

export const fetchInMutation = mutation({
  args: {},
  handler: async () => {
    await fetch('http://127.0.0.1:1/');
  },
});

export const timerInQuery = query({
  args: {},
  handler: async () => {
    await new Promise((resolve) => setTimeout(resolve, 1));
  },
});

/** Awaits what nothing resolves, after a write: the engine's time limit must end it. */
export const hangingMutation = mutation({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) => {
    await ctx.db.insert('messages', { channel, author: 'hang', body: 'before the hang' });
    await new Promise(() => undefined);
  },
});

/** Throws a value JSON cannot write: a bigint, a cyclic object or one with no prototype. */
/* eslint-disable @typescript-eslint/only-throw-error -- throwing what is not an Error is the point */
export const throwOdd = query({
  args: { what: v.string() },
  handler: async (_ctx, { what }) => {
    if (what === 'bigint') throw 10n;
    if (what === 'cyclic') {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      throw cyclic;
    }
    throw Object.create(null);
  },
});

export const throwOddAction = action({
  args: { what: v.string() },
  handler: async (_ctx, { what }): Promise<void> => {
    if (what === 'bigint') throw 10n;
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    throw cyclic;
  },
});
/* eslint-enable @typescript-eslint/only-throw-error */

/** Inserts `count` messages: more than a transaction may write fails. */
export const manyWrites = mutation({
  args: { count: v.number() },
  handler: async (ctx, { count }) => {
    for (let i = 0; i < count; i++) {
      await ctx.db.insert('messages', { channel: 'bulk', author: 'x', body: `${i}` });
    }
  },
});

/** Writes `count` messages of `kib` KiB each to `channel`: too many bytes fail. */
export const bigWrites = mutation({
  args: { channel: v.string(), count: v.number(), kib: v.number() },
  handler: async (ctx, { channel, count, kib }) => {
    const body = 'x'.repeat(kib * 1024);
    for (let i = 0; i < count; i++) await ctx.db.insert('messages', { channel, author: 'x', body });
  },
});

/** Reads a channel's messages (all, or by paginate() in pages of `pageSize`) and its metrics. */
export const readChannel = query({
  args: { channel: v.string(), pageSize: v.optional(v.number()) },
  handler: async (ctx, { channel, pageSize }) => {
    const query = () =>
      ctx.db.query('messages').withIndex('by_channel', (q) => q.eq('channel', channel));
    let count = 0;
    if (pageSize === undefined) count = (await query().collect()).length;
    else {
      let cursor: string | null = null;
      for (;;) {
        const page = await query().paginate({ cursor, numItems: pageSize });
        count += page.page.length;
        if (page.isDone) break;
        cursor = page.continueCursor;
      }
    }
    const { bytesRead } = await ctx.meta.getTransactionMetrics();
    return { count, bytesRead: bytesRead.used };
  },
});

/** Reads a channel's first message `reads` times, one round trip each, then writes one. */
export const readThenWrite = mutation({
  args: { reads: v.number(), body: v.string() },
  handler: async (ctx, { reads, body }) => {
    for (let i = 0; i < reads; i++) {
      await ctx.db
        .query('messages')
        .withIndex('by_channel', (q) => q.eq('channel', `read-${i % 5}`))
        .first();
    }
    await ctx.db.insert('messages', { channel: 'slow', author: 'x', body });
  },
});

/** Reads one document `count` times: more than a transaction may read fails. */
export const manyReads = query({
  args: { id: v.id('messages'), count: v.number() },
  handler: async (ctx, { id, count }) => {
    for (let i = 0; i < count; i++) await ctx.db.get(id);
    return count;
  },
});

export const hangingQuery = query({
  args: {},
  handler: async () => {
    await new Promise(() => undefined);
  },
});

export const logs = query({
  args: {},
  handler: async () => {
    console.log('hello', { from: 'a query' });
    console.warn('careful');
    console.error('oops', 42);
    return null;
  },
});

export const schemaViolation = mutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert('messages', { channel: 'x', author: 'x', body: 42 as unknown as string });
  },
});

export const unknownTable = mutation({
  args: {},
  handler: async (ctx) => {
    // @ts-expect-error not in the schema
    await ctx.db.insert('nowhere', { a: 1 });
  },
});

export const tooBig = mutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert('values', { label: 'x', nested: 'y'.repeat(1024 * 1024 + 10) });
  },
});

export const roundTrip = action({
  args: { channel: v.string() },
  handler: async (ctx, { channel }): Promise<{ id: string; count: number; echoed: unknown }> => {
    const id: string = await ctx.runMutation(api.messages.send, {
      channel,
      author: 'action',
      body: 'from an action',
    });
    const count: number = await ctx.runQuery(internal.messages.secretCount, { channel });
    const echoed: unknown = await ctx.runAction(api.rules.echoAction, { value: 7n });
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (Date.now() - started < 4) throw new Error('timers in actions should be real');
    return { id, count, echoed };
  },
});

export const echoAction = action({
  args: { value: v.int64() },
  handler: async (_ctx, { value }) => value * 2n,
});

export const metadata = query({
  args: {},
  handler: async (ctx) => {
    await ctx.db.query('messages').first();
    const fn = await ctx.meta.getFunctionMetadata();
    return {
      name: fn.name,
      type: fn.type,
      visibility: fn.visibility,
      identity: await ctx.auth.getUserIdentity(),
    };
  },
});
