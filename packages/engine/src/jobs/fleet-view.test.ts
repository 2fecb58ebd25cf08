/**
 * Deploys rolled out server by server on one PostgreSQL: the new server starts beside the old
 * one, and each leaves the background work (pool jobs, onComplete handlers, scheduled
 * functions) of functions it lacks, or has with other arguments, to the servers that run them
 * as they were enqueued; once none of those is left, such work is the remaining servers' and
 * runs or fails as in a fleet of one version, never pending for ever.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DRIVERS, startApp } from '../test-harness.js';
import { call } from './test-calls.js';

const postgres = DRIVERS.find((driver) => driver.name === 'postgres')!;
const APP = join(fileURLToPath(import.meta.url), '../../../../testing/apps/pools/convex');
const schema = readFileSync(join(APP, 'schema.ts'), 'utf8');

/** The new version's schema: a new index on an old table, and a new table. */
const newSchema = schema
  .replace(
    ".index('by_label', ['label']),",
    ".index('by_label', ['label']).index('by_at', ['at']),",
  )
  .replace(
    'export default defineSchema({',
    'export default defineSchema({\n  notes: defineTable({ text: v.string() }),',
  );

/** The new version's new functions, and a mutation that uses them beside old ones. */
const rollout = `import { vOnCompleteArgs, Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, mutation } from './_generated/server';

const pool = new Workpool('rollout', { maxParallelism: 2 });
// One start a minute: a start counted for a job the old server leaves alone would hold it up.
const limited = new Workpool('rollout-limited', {
  maxParallelism: 2,
  rateLimit: { count: 1, periodMs: 60_000 },
});

export const fresh = internalAction({
  args: { label: v.string() },
  handler: async (ctx, { label }): Promise<string> => {
    await ctx.runMutation(internal.pools.record, { label });
    return label;
  },
});

export const freshMutation = internalMutation({
  args: { label: v.string() },
  handler: async (ctx, { label }) => {
    await ctx.db.insert('events', { label, at: Date.now() });
  },
});

export const freshDone = internalMutation({
  args: vOnCompleteArgs(),
  handler: async (ctx, args) => {
    await ctx.db.insert('completions', args);
  },
});

export const start = mutation({
  args: { tag: v.string() },
  handler: async (ctx, { tag }) => {
    await pool.enqueueAction(ctx, internal.rollout.fresh, { label: tag + ' new action' });
    await limited.enqueueAction(ctx, internal.rollout.fresh, { label: tag + ' new limited' });
    await pool.enqueueAction(
      ctx,
      internal.pools.work,
      { label: tag + ' old action', ms: 0 },
      { onComplete: internal.rollout.freshDone, context: tag },
    );
    await ctx.scheduler.runAfter(0, internal.rollout.freshMutation, { label: tag + ' new scheduled' });
    await ctx.scheduler.runAfter(0, internal.pools.record, { label: tag + ' old scheduled' });
  },
});
`;

/** A burst of the new functions' work ahead of old functions' work, in one transaction. */
const burst = `
export const burst = mutation({
  args: { tag: v.string(), count: v.number() },
  handler: async (ctx, { tag, count }) => {
    const labels = Array.from({ length: count }, (_, i) => ({ label: tag + ' burst ' + i }));
    await pool.enqueueActionBatch(ctx, internal.rollout.fresh, labels);
    for (const args of labels) await ctx.scheduler.runAfter(0, internal.rollout.freshMutation, args);
    await pool.enqueueAction(ctx, internal.pools.work, { label: tag + ' old action', ms: 0 });
    await ctx.scheduler.runAfter(0, internal.pools.record, { label: tag + ' old scheduled' });
    // A rate-limited pool claims only what it starts: it too looks past the new work.
    await limited.enqueueActionBatch(ctx, internal.rollout.fresh, labels.slice(0, 100));
    await limited.enqueueAction(ctx, internal.pools.work, { label: tag + ' old limited', ms: 0 });
  },
});
`;

const newVersion = { 'schema.ts': newSchema, 'rollout.ts': rollout + burst };

const pools = readFileSync(join(APP, 'pools.ts'), 'utf8');

/** A version in which `pools:record` takes a second, required argument. */
const changedRecord = pools
  .replace(
    `export const record = internalMutation({
  args: { label: v.string() },
  handler: async (ctx, { label }): Promise<number> => {`,
    `export const record = internalMutation({
  args: { label: v.string(), note: v.string() },
  handler: async (ctx, { label }): Promise<number> => {`,
  )
  .replace(
    'await ctx.runMutation(internal.pools.record, { label });',
    "await ctx.runMutation(internal.pools.record, { label, note: 'new' });",
  );

/** Schedules and enqueues `pools:record` as the version's arguments say (`note`, or none). */
const route = (note: string | null) => `import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { mutation } from './_generated/server';

const pool = new Workpool('routed', { maxParallelism: 2 });

export const both = mutation({
  args: { tag: v.string() },
  handler: async (ctx, { tag }) => {
    const extra = ${note === null ? '{}' : `{ note: '${note}' }`};
    await ctx.scheduler.runAfter(0, internal.pools.record, { label: tag + ' scheduled', ...extra });
    await pool.enqueueMutation(ctx, internal.pools.record, { label: tag + ' enqueued', ...extra });
  },
});
`;

const oldRouted = { 'route.ts': route(null) };
const newRouted = { 'pools.ts': changedRecord, 'route.ts': route('new') };

type Engine = Awaited<ReturnType<typeof startApp>>;
const ran = async (engine: Engine, label: string) =>
  ((await call(engine.query('pools:events', { label }))) as unknown[]).length;
const completions = async (engine: Engine) =>
  (await call(engine.query('pools:completions', {}))) as Array<{ context: string }>;

describe('a deploy rolled out beside the old servers', () => {
  it('starts beside the old server, which leaves the new functions’ work to it', async () => {
    expect(newSchema).toContain("index('by_at'");
    expect(newSchema).toContain('notes: defineTable');
    const place = postgres.place();
    const old = await startApp('pools', postgres, { store: await place.open(), jobs: {} });
    // Its jobs are not started yet: the old server alone runs background work for now.
    const fresh = await startApp('pools', postgres, {
      files: newVersion,
      store: await place.open(),
    });
    await call(fresh.mutation('rollout:start', { tag: 'a' }));

    // What the old server has, it runs: an old action, an old scheduled mutation.
    await expect.poll(() => ran(old, 'a old action'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(old, 'a old scheduled'), { timeout: 10_000 }).toBe(1);
    // What it lacks stays waiting for the new server: a new action, a new scheduled mutation,
    // and the old action's new onComplete.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await ran(old, 'a new action')).toBe(0);
    expect(await ran(old, 'a new limited')).toBe(0);
    expect(await ran(old, 'a new scheduled')).toBe(0);
    expect(await completions(old)).toEqual([]);
    // What an operator sees of it (/metrics): the old server lacks the five new functions.
    expect(old.functionsLeftToOthers()).toBe(5);

    // The new server's runners take it all.
    fresh.startJobs({});
    await expect.poll(() => ran(fresh, 'a new action'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(fresh, 'a new limited'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(fresh, 'a new scheduled'), { timeout: 10_000 }).toBe(1);
    await expect
      .poll(async () => (await completions(fresh)).map((done) => done.context), { timeout: 10_000 })
      .toEqual(['a']);
    // Each ran once, on the server that has it.
    expect(await ran(fresh, 'a old action')).toBe(1);
    expect(await ran(fresh, 'a old scheduled')).toBe(1);

    // The old version may not come back while the new one runs: it would drop the new index.
    await expect(startApp('pools', postgres, { store: await place.open() })).rejects.toThrow(
      /Other servers on this database run a schema that this server's code does not keep unchanged \(pid \d+ on .+, code [0-9a-f]{16}\)/,
    );
  });

  it('runs its own work from behind a burst of work it leaves to the new server', async () => {
    const place = postgres.place();
    const old = await startApp('pools', postgres, { store: await place.open(), jobs: {} });
    // Its runners never start: the burst stays pending ahead of the old functions' work.
    const fresh = await startApp('pools', postgres, {
      files: newVersion,
      store: await place.open(),
    });
    // More than one claim reads (500 ahead), or one pass of the scheduler.
    await call(fresh.mutation('rollout:burst', { tag: 'c', count: 700 }));
    await expect.poll(() => ran(old, 'c old action'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(old, 'c old scheduled'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(old, 'c old limited'), { timeout: 10_000 }).toBe(1);
    expect(await ran(old, 'c burst 0')).toBe(0);
  });

  it('rolls out a function given other arguments: each version runs the work it enqueued', async () => {
    expect(changedRecord).toContain('note: v.string()');
    expect(changedRecord).toContain("note: 'new'");
    const place = postgres.place();
    const old = await startApp('pools', postgres, {
      files: oldRouted,
      store: await place.open(),
      jobs: {},
    });
    // The schema is the same: the new version starts beside the old, its runners not yet.
    const fresh = await startApp('pools', postgres, {
      files: newRouted,
      store: await place.open(),
    });
    await call(old.mutation('route:both', { tag: 'o' }));
    await call(fresh.mutation('route:both', { tag: 'n' }));
    await expect.poll(() => ran(old, 'o scheduled'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(old, 'o enqueued'), { timeout: 10_000 }).toBe(1);
    // The old server would refuse the new arguments (an extra field): it leaves them alone.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await ran(old, 'n scheduled')).toBe(0);
    expect(await ran(old, 'n enqueued')).toBe(0);
    expect(old.functionsLeftToOthers()).toBeGreaterThan(0);

    fresh.startJobs({});
    await expect.poll(() => ran(fresh, 'n scheduled'), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => ran(fresh, 'n enqueued'), { timeout: 10_000 }).toBe(1);
    // Everything ran once, and nothing failed on the other version's validators.
    const scheduled = (await call(fresh.query('pools:scheduledAll', {}))) as Array<{
      state: { kind: string };
    }>;
    expect(scheduled.map((job) => job.state.kind)).toEqual(['success', 'success']);
    const jobs = (await call(fresh.query('pools:jobs', {}))) as Array<{
      pool: string;
      state: string;
    }>;
    expect(jobs.filter((job) => job.pool === 'routed').map((job) => job.state)).toEqual([
      'finished',
      'finished',
    ]);

    // With the old version gone, its work is the new one's, checked against its validators
    // as in a fleet of one version: the old arguments lack \`note\`.
    const last = await startApp('pools', postgres, { files: oldRouted, store: await place.open() });
    await call(last.mutation('route:both', { tag: 'p' }));
    await old.store.close();
    await last.store.close();
    await expect
      .poll(
        async () => {
          const all = (await call(fresh.query('pools:scheduledAll', {}))) as Array<{
            args: Array<{ label: string }>;
            state: { kind: string; error?: string };
          }>;
          return all.find((job) => job.args[0]?.label === 'p scheduled')?.state;
        },
        { timeout: 20_000 },
      )
      .toMatchObject({ kind: 'failed', error: expect.stringMatching(/note/) as unknown });
  });

  it('gives the work back to the old server once no server that has the function is left', async () => {
    const place = postgres.place();
    const old = await startApp('pools', postgres, { store: await place.open(), jobs: {} });
    const fresh = await startApp('pools', postgres, {
      files: newVersion,
      store: await place.open(),
    });
    await call(fresh.mutation('rollout:start', { tag: 'b' }));
    await expect.poll(() => ran(old, 'b old scheduled'), { timeout: 10_000 }).toBe(1);
    // The new server goes before running anything: nobody has the new functions any more.
    await fresh.store.close();
    // The old server fails them as unknown, as a fleet of one version would, rather than
    // leaving them pending for ever.
    await expect
      .poll(
        async () => {
          const jobs = (await call(old.query('pools:jobs', {}))) as Array<{
            fn: string;
            state: string;
          }>;
          return jobs.find((job) => job.fn === 'rollout:fresh')?.state;
        },
        { timeout: 20_000 },
      )
      .toBe('failed');
    await expect
      .poll(
        async () => {
          const scheduled = (await call(old.query('pools:scheduledAll', {}))) as Array<{
            name: string;
            state: { kind: string };
          }>;
          return scheduled.find((job) => job.name === 'rollout:freshMutation')?.state.kind;
        },
        { timeout: 20_000 },
      )
      .toBe('failed');
    expect(old.functionsLeftToOthers()).toBe(0);
  });
});
