/**
 * Jobs that depend on jobs, and unique jobs: graphs enqueued atomically, results flowing down
 * the edges, failures cascading, re-runs from a node, and unique keys under every policy.
 */
import { NonRetryableError, Workpool, type GraphNode, type WorkId } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import {
  internalAction,
  internalMutation,
  internalQuery,
  mutation,
  query,
  type ActionCtx,
} from './_generated/server';

const graph = new Workpool('graph', { maxParallelism: 4 });
const unique = new Workpool('unique', { maxParallelism: 2 });
const serial = new Workpool('serial', { maxParallelism: 1 });
const tenants = new Workpool('tenants', { maxParallelism: 6, groupParallelism: 2 });
const limited = new Workpool('limited', {
  maxParallelism: 50,
  rateLimit: { count: 100, periodMs: 1000 },
});
/** One start a minute: a start counted for a job that did not start would hold the next up. */
const rare = new Workpool('rare', { maxParallelism: 1, rateLimit: { count: 1, periodMs: 60_000 } });
const perGroupRate = new Workpool('perGroupRate', {
  maxParallelism: 20,
  groupRateLimit: { count: 5, periodMs: 500 },
});
const beats = new Workpool('beats', {
  maxParallelism: 4,
  heartbeatTimeoutMs: 200,
  actionTimeoutMs: 2000,
  retryActionsByDefault: true,
  defaultRetryBehavior: { maxAttempts: 2, initialBackoffMs: 10, base: 2 },
});
const quick = new Workpool('quick', { maxParallelism: 2, actionTimeoutMs: 150 });
/** One slot, for long actions that stop when told to. */
const stoppable = new Workpool('stoppable', { maxParallelism: 1 });
/** Dead letters kept briefly (results kept long): the two retentions differ. */
const shortLived = new Workpool('shortLived', { failedTtl: 300, ttl: 60_000 });
const pools = {
  graph,
  unique,
  serial,
  tenants,
  limited,
  rare,
  perGroupRate,
  beats,
  quick,
  shortLived,
  stoppable,
};
type PoolName = keyof typeof pools;
const vPoolName = v.union(...Object.keys(pools).map((name) => v.literal(name as PoolName)));

/** A step: records when it ran and what its dependencies returned; returns `label(inputs)`. */
export const step = internalAction({
  args: {
    label: v.string(),
    ms: v.optional(v.number()),
    fail: v.optional(v.boolean()),
    /** Fail while the switch of this name is on (see setSwitch). */
    failWhile: v.optional(v.string()),
  },
  handler: async (ctx, { label, ms, fail, failWhile }): Promise<string> => {
    const start = Date.now();
    const inputs = (await graph.dependencies(ctx)).map((dependency) =>
      dependency.result.kind !== 'success'
        ? dependency.result.kind
        : typeof dependency.result.returnValue === 'string'
          ? dependency.result.returnValue
          : JSON.stringify(dependency.result.returnValue),
    );
    await new Promise((resolve) => setTimeout(resolve, ms ?? 5));
    await ctx.runMutation(internal.graph.logStep, { label, start, end: Date.now(), inputs });
    if (fail === true) throw new NonRetryableError(`${label} cannot work`);
    if (
      failWhile !== undefined &&
      (await ctx.runQuery(internal.graph.switchOn, { name: failWhile }))
    ) {
      throw new NonRetryableError(`${label} failed while ${failWhile} was on`);
    }
    return `${label}(${inputs.join('+')})`;
  },
});

export const logStep = internalMutation({
  args: { label: v.string(), start: v.number(), end: v.number(), inputs: v.array(v.string()) },
  handler: async (ctx, args) => {
    await ctx.db.insert('steps', args);
  },
});

export const steps = query({
  args: {},
  handler: async (ctx) =>
    (await ctx.db.query('steps').collect()).map(({ label, start, end, inputs }) => ({
      label,
      start,
      end,
      inputs,
    })),
});

/** a ─▶ b, c ─▶ d */
type Ids = Promise<Record<string, WorkId>>;

export const diamond = mutation({
  args: {},
  handler: async (ctx): Ids =>
    await graph.enqueueGraph(ctx, {
      a: { action: internal.graph.step, args: { label: 'a' } },
      b: { action: internal.graph.step, args: { label: 'b', ms: 30 }, dependsOn: ['a'] },
      c: { action: internal.graph.step, args: { label: 'c' }, dependsOn: ['a'] },
      d: { action: internal.graph.step, args: { label: 'd' }, dependsOn: ['b', 'c'] },
    }),
});

/** root ─▶ `width` leaves ─▶ sink */
export const fan = mutation({
  args: { width: v.number() },
  handler: async (ctx, { width }): Promise<{ root: WorkId; leaves: WorkId[]; sink: WorkId }> => {
    const root: WorkId = await graph.enqueueAction(ctx, internal.graph.step, { label: 'root' });
    const leaves: WorkId[] = [];
    for (let i = 0; i < width; i++) {
      leaves.push(
        await graph.enqueueAction(
          ctx,
          internal.graph.step,
          { label: `leaf${i}` },
          { dependsOn: [root] },
        ),
      );
    }
    const sink: WorkId = await graph.enqueueAction(
      ctx,
      internal.graph.step,
      { label: 'sink' },
      { dependsOn: leaves },
    );
    return { root, leaves, sink };
  },
});

/** bad fails ─▶ child (per `policy`) ─▶ grandchild; a sibling that does not depend on it. */
export const failing = mutation({
  args: { policy: v.union(v.literal('fail'), v.literal('cancel'), v.literal('run')) },
  handler: async (ctx, { policy }): Ids =>
    await graph.enqueueGraph(ctx, {
      bad: { action: internal.graph.step, args: { label: 'bad', fail: true } },
      child: {
        action: internal.graph.step,
        args: { label: 'child' },
        dependsOn: ['bad'],
        onDependencyFailure: policy,
      },
      grandchild: {
        action: internal.graph.step,
        args: { label: 'grandchild' },
        dependsOn: ['child'],
      },
      sibling: { action: internal.graph.step, args: { label: 'sibling' } },
    }),
});

export const cyclic = mutation({
  args: {},
  handler: async (ctx): Ids => {
    await ctx.db.insert('steps', {
      label: 'written before the cycle',
      start: 0,
      end: 0,
      inputs: [],
    });
    return await graph.enqueueGraph(ctx, {
      x: { action: internal.graph.step, args: { label: 'x' }, dependsOn: ['z'] },
      y: { action: internal.graph.step, args: { label: 'y' }, dependsOn: ['x'] },
      z: { action: internal.graph.step, args: { label: 'z' }, dependsOn: ['y'] },
    });
  },
});

/** Independent steps of the graph pool, each taking `ms`. */
export const enqueueSteps = mutation({
  args: { labels: v.array(v.string()), ms: v.number() },
  handler: async (ctx, { labels, ms }): Promise<WorkId[]> => {
    const ids: WorkId[] = [];
    for (const label of labels) {
      ids.push(await graph.enqueueAction(ctx, internal.graph.step, { label, ms }));
    }
    return ids;
  },
});

/** A job and a child of it, enqueued one after the other by one mutation. */
export const parentAndChild = mutation({
  args: {},
  handler: async (ctx): Promise<WorkId[]> => {
    const parent = await graph.enqueueAction(ctx, internal.graph.step, { label: 'parent' });
    const child = await graph.enqueueAction(
      ctx,
      internal.graph.step,
      { label: 'child' },
      { dependsOn: [parent] },
    );
    return [parent, child];
  },
});

/** A child of a job that already finished: it starts at once (or fails at once). */
export const dependOn = mutation({
  args: { id: v.string(), label: v.string() },
  handler: async (ctx, { id, label }): Promise<WorkId> =>
    await graph.enqueueAction(ctx, internal.graph.step, { label }, { dependsOn: [id as WorkId] }),
});

/** A step of the graph pool that holds unique key `key`. */
export const enqueueKeyed = mutation({
  args: { key: v.string(), label: v.string() },
  handler: async (ctx, { key, label }): Promise<WorkId> =>
    await graph.enqueueAction(ctx, internal.graph.step, { label }, { uniqueKey: key, name: label }),
});

/**
 * One graph that both waits for `id` and replaces it: `dependent` depends on it (per `policy`),
 * `after` on `dependent`, and `replacer` takes its unique key; the nodes come in `order`.
 */
export const dependOnAndReplace = mutation({
  args: {
    id: v.string(),
    key: v.string(),
    policy: v.union(v.literal('fail'), v.literal('cancel')),
    order: v.array(v.union(v.literal('dependent'), v.literal('after'), v.literal('replacer'))),
  },
  handler: async (ctx, { id, key, policy, order }): Ids => {
    const nodes: Record<'dependent' | 'after' | 'replacer', GraphNode> = {
      dependent: {
        action: internal.graph.step,
        args: { label: 'dependent' },
        dependsOn: [id],
        onDependencyFailure: policy,
      },
      after: { action: internal.graph.step, args: { label: 'after' }, dependsOn: ['dependent'] },
      replacer: {
        action: internal.graph.step,
        args: { label: 'replacer' },
        uniqueKey: key,
        onDuplicate: 'replace',
      },
    };
    return await graph.enqueueGraph(
      ctx,
      Object.fromEntries(order.map((node) => [node, nodes[node]])),
    );
  },
});

/**
 * A graph replacing a job of its own: `second` takes the unique key of `first`, which `child`
 * (running anyway) and `other` come before.
 */
export const replaceWithinGraph = mutation({
  args: {},
  handler: async (ctx): Ids =>
    await graph.enqueueGraph(ctx, {
      first: { action: internal.graph.step, args: { label: 'first' }, uniqueKey: 'own' },
      child: {
        action: internal.graph.step,
        args: { label: 'child' },
        dependsOn: ['first', 'other'],
        onDependencyFailure: 'run',
      },
      other: { action: internal.graph.step, args: { label: 'other', ms: 50 } },
      second: {
        action: internal.graph.step,
        args: { label: 'second' },
        uniqueKey: 'own',
        onDuplicate: 'replace',
      },
    }),
});

export const rerun = mutation({
  args: { id: v.string() },
  handler: async (ctx, { id }): Promise<number> => await graph.rerun(ctx, id as WorkId),
});

export const results = query({
  args: { pool: vPoolName, ids: v.array(v.string()) },
  handler: async (ctx, { pool, ids }) => {
    const out = [];
    for (const id of ids) out.push(await pools[pool].result(ctx, id as WorkId));
    return out;
  },
});

export const enqueueUnique = mutation({
  args: {
    key: v.string(),
    label: v.string(),
    ms: v.optional(v.number()),
    onDuplicate: v.optional(v.union(v.literal('skip'), v.literal('replace'))),
    uniqueForMs: v.optional(v.number()),
    runAfter: v.optional(v.number()),
  },
  handler: async (ctx, { key, label, ms, onDuplicate, uniqueForMs, runAfter }): Promise<WorkId> =>
    await unique.enqueueAction(
      ctx,
      internal.graph.uniqueStep,
      { label, ms: ms ?? 5 },
      {
        uniqueKey: key,
        ...(onDuplicate === undefined ? {} : { onDuplicate }),
        ...(uniqueForMs === undefined ? {} : { uniqueForMs }),
        ...(runAfter === undefined ? {} : { runAfter }),
      },
    ),
});

export const uniqueStep = internalAction({
  args: { label: v.string(), ms: v.number() },
  handler: async (ctx, { label, ms }) => {
    const start = Date.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    await ctx.runMutation(internal.graph.logStep, { label, start, end: Date.now(), inputs: [] });
  },
});

/** Enqueues `label` under unique key `key`, replacing the job that holds it if it can. */
export const replaceUnique = internalMutation({
  args: { key: v.string(), label: v.string() },
  handler: async (ctx, { key, label }): Promise<WorkId> =>
    await unique.enqueueAction(
      ctx,
      internal.graph.uniqueStep,
      { label, ms: 5 },
      { uniqueKey: key, onDuplicate: 'replace' },
    ),
});

/**
 * A unique job that, as soon as it starts, enqueues its replacement under its own key: it has
 * started, so it must not be canceled, whether or not its start is in the database yet.
 */
export const selfReplacing = internalAction({
  args: { key: v.string(), label: v.string() },
  handler: async (ctx, { key, label }): Promise<string> => {
    const start = Date.now();
    const replacement = await ctx.runMutation(internal.graph.replaceUnique, {
      key,
      label: `${label} replacement`,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await ctx.runMutation(internal.graph.logStep, { label, start, end: Date.now(), inputs: [] });
    return replacement;
  },
});

export const enqueueSelfReplacing = mutation({
  args: { key: v.string(), label: v.string() },
  handler: async (ctx, args): Promise<WorkId> =>
    await unique.enqueueAction(ctx, internal.graph.selfReplacing, args, { uniqueKey: args.key }),
});

/** Jobs of a pool of one, each with a priority: they run one at a time, in priority order. */
export const enqueuePrioritized = mutation({
  args: { jobs: v.array(v.object({ label: v.string(), priority: v.optional(v.number()) })) },
  handler: async (ctx, { jobs }): Promise<WorkId[]> => {
    const ids: WorkId[] = [];
    for (const { label, priority } of jobs) {
      ids.push(
        await serial.enqueueAction(
          ctx,
          internal.graph.uniqueStep,
          { label, ms: 1 },
          priority === undefined ? {} : { priority },
        ),
      );
    }
    return ids;
  },
});

/** `count` jobs of `ms` each in a limited pool, in `group` when given; labels `<label>:<i>`. */
export const enqueueLimited = mutation({
  args: {
    pool: v.union(
      v.literal('tenants'),
      v.literal('limited'),
      v.literal('rare'),
      v.literal('perGroupRate'),
    ),
    label: v.string(),
    count: v.number(),
    ms: v.number(),
    group: v.optional(v.string()),
  },
  handler: async (ctx, { pool, label, count, ms, group }): Promise<WorkId[]> =>
    await pools[pool].enqueueActionBatch(
      ctx,
      internal.graph.uniqueStep,
      Array.from({ length: count }, (_, i) => ({ label: `${label}:${i}`, ms })),
      group === undefined ? {} : { group },
    ),
});

export const setSwitch = mutation({
  args: { name: v.string(), on: v.boolean() },
  handler: async (ctx, { name, on }) => {
    const existing = await ctx.db
      .query('switches')
      .withIndex('by_name', (q) => q.eq('name', name))
      .unique();
    if (existing === null) await ctx.db.insert('switches', { name, on });
    else await ctx.db.patch(existing._id, { on });
  },
});

export const switchOn = internalQuery({
  args: { name: v.string() },
  handler: async (ctx, { name }): Promise<boolean> =>
    (
      await ctx.db
        .query('switches')
        .withIndex('by_name', (q) => q.eq('name', name))
        .unique()
    )?.on ?? false,
});

/** bad (fails while `switch` is on) ─▶ child ─▶ grandchild */
export const failingChain = mutation({
  args: { switch: v.string() },
  handler: async (ctx, args): Ids =>
    await graph.enqueueGraph(ctx, {
      bad: { action: internal.graph.step, args: { label: 'bad', failWhile: args.switch } },
      child: { action: internal.graph.step, args: { label: 'child' }, dependsOn: ['bad'] },
      grandchild: {
        action: internal.graph.step,
        args: { label: 'grandchild' },
        dependsOn: ['child'],
      },
    }),
});

export const failedJobs = query({
  args: {},
  handler: async (ctx) => await graph.failedJobs(ctx),
});

export const retryFailed = mutation({
  args: { ids: v.optional(v.array(v.string())) },
  handler: async (ctx, { ids }): Promise<number> =>
    await graph.retryFailed(ctx, ids === undefined ? {} : { ids: ids as WorkId[] }),
});

/** Logs a long action's step `label`, with whether its signal fired (and why) or 'ok'. */
async function logEnd(
  ctx: ActionCtx,
  label: string,
  start: number,
  signal: AbortSignal,
): Promise<void> {
  const reason = signal.aborted ? `aborted: ${(signal.reason as Error).message}` : 'ok';
  await ctx.runMutation(internal.graph.logStep, {
    label,
    start,
    end: Date.now(),
    inputs: [reason],
  });
}

/**
 * A long action in the `beats` pool: works `ms` in steps of 50 ms, beating between steps when
 * asked; records whether its signal fired (and why) when it is done.
 */
export const longWork = internalAction({
  args: { label: v.string(), ms: v.number(), beat: v.boolean() },
  handler: async (ctx, { label, ms, beat }) => {
    const signal = beats.signal(ctx);
    const start = Date.now();
    while (Date.now() - start < ms) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (beat) await beats.heartbeat(ctx);
    }
    await logEnd(ctx, label, start, signal);
    return label;
  },
});

export const enqueueLong = mutation({
  args: {
    label: v.string(),
    ms: v.number(),
    beat: v.boolean(),
    pool: v.optional(v.union(v.literal('beats'), v.literal('quick'))),
  },
  handler: async (ctx, { pool, ...args }): Promise<WorkId> =>
    await pools[pool ?? 'beats'].enqueueAction(ctx, internal.graph.longWork, args),
});

/**
 * A long action in the `stoppable` pool that stops as soon as its signal fires: logs a step
 * `<label>:started` when it begins and `<label>` with why it ended.
 */
export const untilAborted = internalAction({
  args: { label: v.string(), ms: v.number() },
  handler: async (ctx, { label, ms }) => {
    const signal = stoppable.signal(ctx);
    const start = Date.now();
    await ctx.runMutation(internal.graph.logStep, {
      label: `${label}:started`,
      start,
      end: start,
      inputs: [],
    });
    while (Date.now() - start < ms && !signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await logEnd(ctx, label, start, signal);
    return label;
  },
});

export const enqueueStoppable = mutation({
  args: { label: v.string(), ms: v.number() },
  handler: async (ctx, args): Promise<WorkId> =>
    await stoppable.enqueueAction(ctx, internal.graph.untilAborted, args),
});

export const cancelStoppable = mutation({
  args: { id: v.string() },
  handler: async (ctx, { id }) => {
    await stoppable.cancel(ctx, id as WorkId);
  },
});

export const cancel = mutation({
  args: { id: v.string() },
  handler: async (ctx, { id }) => {
    await graph.cancel(ctx, id as WorkId);
  },
});

/** One job that fails for good and one that succeeds, in the `shortLived` pool. */
export const failAndSucceed = mutation({
  args: {},
  handler: async (ctx): Promise<WorkId[]> => [
    await shortLived.enqueueAction(ctx, internal.graph.step, { label: 'doomed', fail: true }),
    await shortLived.enqueueAction(ctx, internal.graph.step, { label: 'fine' }),
  ],
});

export const shortLivedFailures = query({
  args: {},
  handler: async (ctx) => (await shortLived.failedJobs(ctx)).map((job) => job.id),
});
