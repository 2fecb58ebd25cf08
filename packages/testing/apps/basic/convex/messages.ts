import { paginationOptsValidator } from 'convex/server';
import { ConvexError, v } from 'convex/values';
import { internal } from './_generated/api';
import { internalMutation, internalQuery, mutation, query } from './_generated/server';

export const send = mutation({
  args: { channel: v.string(), author: v.string(), body: v.string() },
  returns: v.id('messages'),
  handler: async (ctx, args) => {
    if (args.body.length === 0) throw new ConvexError({ code: 'EMPTY', channel: args.channel });
    return await ctx.db.insert('messages', args);
  },
});

export const list = query({
  args: {},
  handler: async (ctx) => await ctx.db.query('messages').collect(),
});

export const byChannel = query({
  args: { channel: v.string(), order: v.optional(v.union(v.literal('asc'), v.literal('desc'))) },
  handler: async (ctx, { channel, order }) =>
    await ctx.db
      .query('messages')
      .withIndex('by_channel', (q) => q.eq('channel', channel))
      .order(order ?? 'asc')
      .collect(),
});

export const byAuthorRange = query({
  args: {
    channel: v.string(),
    after: v.optional(v.string()),
    before: v.optional(v.string()),
    inclusive: v.boolean(),
  },
  handler: async (ctx, { channel, after, before, inclusive }) =>
    await ctx.db
      .query('messages')
      .withIndex('by_channel_author', (q) => {
        const eq = q.eq('channel', channel);
        const lower =
          after === undefined ? eq : inclusive ? eq.gte('author', after) : eq.gt('author', after);
        return before === undefined
          ? lower
          : inclusive
            ? lower.lte('author', before)
            : lower.lt('author', before);
      })
      .collect(),
});

export const filtered = query({
  args: { minLikes: v.number() },
  handler: async (ctx, { minLikes }) =>
    await ctx.db
      .query('messages')
      .filter((q) =>
        q.or(
          q.and(q.gte(q.field('likes'), minLikes), q.neq(q.field('author'), 'mallory')),
          q.eq(q.field('body'), 'pinned'),
        ),
      )
      .collect(),
});

export const arithmetic = query({
  args: {},
  handler: async (ctx) =>
    await ctx.db
      .query('messages')
      .filter((q) => q.eq(q.mod(q.add(q.field('likes'), 1), 2), 0))
      .collect(),
});

export const missingLikes = query({
  args: {},
  handler: async (ctx) =>
    await ctx.db
      .query('messages')
      .filter((q) => q.eq(q.field('likes'), undefined))
      .collect(),
});

export const firstInChannel = query({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) =>
    await ctx.db
      .query('messages')
      .withIndex('by_channel', (q) => q.eq('channel', channel))
      .first(),
});

export const uniqueInChannel = query({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) =>
    await ctx.db
      .query('messages')
      .withIndex('by_channel', (q) => q.eq('channel', channel))
      .unique(),
});

export const latest = query({
  args: { n: v.number() },
  handler: async (ctx, { n }) => await ctx.db.query('messages').order('desc').take(n),
});

export const iterate = query({
  args: { stopAfter: v.number() },
  handler: async (ctx, { stopAfter }) => {
    const bodies: string[] = [];
    for await (const message of ctx.db.query('messages')) {
      bodies.push(message.body);
      if (bodies.length >= stopAfter) break;
    }
    return bodies;
  },
});

export const filterThenLimit = query({
  args: {},
  handler: async (ctx) =>
    await ctx.db
      .query('messages')
      .filter((q) => q.eq(q.field('channel'), 'b'))
      .take(2),
});

export const page = query({
  args: { paginationOpts: paginationOptsValidator, channel: v.optional(v.string()) },
  handler: async (ctx, { paginationOpts, channel }) =>
    channel === undefined
      ? await ctx.db.query('messages').paginate(paginationOpts)
      : await ctx.db
          .query('messages')
          .withIndex('by_channel', (q) => q.eq('channel', channel))
          .order('desc')
          .paginate(paginationOpts),
});

export const count = query({
  args: {},
  // count() exists at runtime but is not in the public types yet.
  handler: async (ctx) =>
    await (ctx.db.query('messages') as unknown as { count(): Promise<number> }).count(),
});

export const like = mutation({
  args: { id: v.id('messages') },
  handler: async (ctx, { id }) => {
    const message = await ctx.db.get(id);
    if (message === null) throw new Error(`no message ${id}`);
    await ctx.db.patch(id, { likes: (message.likes ?? 0) + 1 });
    return (message.likes ?? 0) + 1;
  },
});

export const unlikeAll = mutation({
  args: { id: v.id('messages') },
  handler: async (ctx, { id }) => {
    await ctx.db.patch(id, { likes: undefined });
  },
});

export const rewrite = mutation({
  args: { id: v.id('messages'), body: v.string() },
  handler: async (ctx, { id, body }) => {
    const message = (await ctx.db.get(id))!;
    await ctx.db.replace(id, { channel: message.channel, author: message.author, body });
  },
});

export const remove = mutation({
  args: { id: v.id('messages') },
  handler: async (ctx, { id }) => {
    await ctx.db.delete(id);
  },
});

export const sendThenFail = mutation({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) => {
    await ctx.db.insert('messages', { channel, author: 'ghost', body: 'should vanish' });
    throw new Error('rolled back on purpose');
  },
});

export const secretCount = internalQuery({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) =>
    (
      await ctx.db
        .query('messages')
        .withIndex('by_channel', (q) => q.eq('channel', channel))
        .collect()
    ).length,
});

export const internalSend = internalMutation({
  args: { channel: v.string(), body: v.string() },
  handler: async (ctx, { channel, body }) =>
    await ctx.db.insert('messages', { channel, author: 'system', body }),
});

export const failingInternal = internalMutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert('messages', { channel: 'nested', author: 'system', body: 'undone' });
    throw new ConvexError('nested failure');
  },
});

export const sendAndCount = mutation({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) => {
    await ctx.runMutation(internal.messages.internalSend, { channel, body: 'via runMutation' });
    let nestedError: unknown = null;
    try {
      await ctx.runMutation(internal.messages.failingInternal, {});
    } catch (error) {
      nestedError = error instanceof ConvexError ? error.data : String(error);
    }
    const count: number = await ctx.runQuery(internal.messages.secretCount, { channel });
    return { count, nestedError };
  },
});
