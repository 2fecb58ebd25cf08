/**
 * Which pool job starts when, on both drivers: priorities, fairness between groups (a group's
 * limit holds, across two runners on PostgreSQL, while other groups keep flowing), and rate
 * limits for a pool and per group, counted over sliding windows of what actually started; and
 * long actions kept alive by heartbeats, or given up (their abort signal saying why) without.
 */
import { BY_ID, type Store } from '@sleigh/storage';
import { convexToJson } from 'convex/values';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { busiestWindow, peakOverlap } from '@sleigh/testing';
import { DRIVERS, startApp } from '../test-harness.js';
import { POOL_LIMITS } from './pool-limits.js';
import { call, results, settled, steps, type Step } from './test-calls.js';

const enqueueLimited = async (engine: Engine, args: Record<string, string | number>) =>
  (await call(engine.mutation('graph:enqueueLimited', args))) as string[];
/**
 * The store, with the first commit that logs starts of a rate-limited pool (a claim) answering
 * `ms` late, as over a slow link: that claim's jobs start long after it was logged.
 */
function lateFirstClaim(store: Store, ms: number): Store {
  let lagged = false;
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'write') {
        return async (fn: Parameters<Store['write']>[0]) => {
          const result = await target.write(fn);
          const log = target.catalog().index(POOL_LIMITS, BY_ID)?.id;
          if (!lagged && result.commit.writes.some((write) => write.indexId === log)) {
            lagged = true;
            await new Promise((resolve) => setTimeout(resolve, ms));
          }
          return result;
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}
const named = (all: Step[], label: string) => all.filter((step) => step.label === label);
const ofLabel = (all: Step[], label: string) =>
  all.filter((step) => step.label.startsWith(`${label}:`));

describe.each(DRIVERS)('which pool job starts when, on $name', (driver) => {
  it('starts ready jobs by priority, oldest first within a priority', async () => {
    const engine = await startApp('pools', driver);
    const jobs = [
      { label: 'low-1', priority: -5 },
      { label: 'default-1' },
      { label: 'high-1', priority: 10 },
      { label: 'low-2', priority: -5 },
      { label: 'high-2', priority: 10 },
      { label: 'default-2', priority: 0 },
      { label: 'mid', priority: 3 },
    ];
    const ids = (await call(engine.mutation('graph:enqueuePrioritized', { jobs }))) as string[];
    engine.startJobs();
    await expect.poll(() => settled(engine, ids, 'serial')).toBe(true);
    const order = (await steps(engine)).sort((a, b) => a.start - b.start).map((s) => s.label);
    expect(order).toEqual(['high-1', 'high-2', 'mid', 'default-1', 'default-2', 'low-1', 'low-2']);
    const bad = await engine.mutation('graph:enqueuePrioritized', {
      // Infinity in Convex's encoding (plain JSON cannot carry it).
      jobs: [{ label: 'x', priority: convexToJson(Number.POSITIVE_INFINITY) }],
    });
    expect(!bad.ok && bad.error.message).toMatch(/priority must be a finite number/);
  });

  const sharing = driver.name === 'postgres' ? ', across two runners sharing the database' : '';
  it(`keeps a group within its limit while another group keeps flowing${sharing}`, async () => {
    const place = driver.place();
    const a = await startApp('pools', driver, { store: await place.open() });
    const b = sharing === '' ? a : await startApp('pools', driver, { store: await place.open() });
    // A flood from one tenant first, then a trickle from another.
    const flood = await enqueueLimited(a, {
      pool: 'tenants',
      label: 'flood',
      count: 30,
      ms: 40,
      group: 'flood',
    });
    const calm = await enqueueLimited(b, {
      pool: 'tenants',
      label: 'calm',
      count: 6,
      ms: 40,
      group: 'calm',
    });
    const loose = await enqueueLimited(a, { pool: 'tenants', label: 'loose', count: 4, ms: 40 });
    a.startJobs({ exclusive: false });
    if (b !== a) b.startJobs({ exclusive: false });
    await expect
      .poll(() => settled(a, [...flood, ...calm, ...loose], 'tenants'), { timeout: 20_000 })
      .toBe(true);
    const ran = await steps(a);
    expect(peakOverlap(ofLabel(ran, 'flood'))).toBeLessThanOrEqual(2);
    expect(peakOverlap(ofLabel(ran, 'calm'))).toBeLessThanOrEqual(2);
    expect(peakOverlap(ran)).toBeLessThanOrEqual(6);
    // The calm tenant was not starved behind the flood: it was done while the flood still ran.
    const calmDone = Math.max(...ofLabel(ran, 'calm').map((s) => s.end));
    const floodDone = Math.max(...ofLabel(ran, 'flood').map((s) => s.end));
    expect(calmDone).toBeLessThan(floodDone);
    expect(ofLabel(ran, 'flood')).toHaveLength(30);
    expect(ofLabel(ran, 'loose')).toHaveLength(4);
  });

  it(`starts at most 100 jobs in any second of a pool limited to 100 per second, over 10 seconds${sharing}`, async () => {
    const place = driver.place();
    const engine = await startApp('pools', driver, { store: await place.open() });
    const other =
      sharing === '' ? null : await startApp('pools', driver, { store: await place.open() });
    const ids = await enqueueLimited(engine, {
      pool: 'limited',
      label: 'rated',
      count: 1050,
      ms: 1,
    });
    engine.startJobs({ exclusive: false });
    other?.startJobs({ exclusive: false });
    await expect
      .poll(() => settled(engine, ids, 'limited'), { timeout: 30_000, interval: 500 })
      .toBe(true);
    const starts = ofLabel(await steps(engine), 'rated').map((step) => step.start);
    expect(starts).toHaveLength(1050);
    expect(busiestWindow(starts, 1000)).toBeLessThanOrEqual(100);
    // It flowed at the limit, not far below it: 1,050 jobs took about ten windows.
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(13_000);
  }, 40_000);

  it('keeps to a rate limit when claimed jobs start late: they wait for a later window', async () => {
    const engine = await startApp('pools', driver, {
      store: lateFirstClaim(await driver.open(), 300),
    });
    const ids = await enqueueLimited(engine, { pool: 'limited', label: 'late', count: 250, ms: 1 });
    engine.startJobs();
    await expect
      .poll(() => settled(engine, ids, 'limited'), { timeout: 30_000, interval: 500 })
      .toBe(true);
    const starts = ofLabel(await steps(engine), 'late').map((step) => step.start);
    expect(starts).toHaveLength(250);
    expect(busiestWindow(starts, 1000)).toBeLessThanOrEqual(100);
  }, 40_000);

  it('gives back the start of a job that missed its deadline: one a minute still starts now', async () => {
    const engine = await startApp('pools', driver, {
      store: lateFirstClaim(await driver.open(), 300),
    });
    const [id] = await enqueueLimited(engine, { pool: 'rare', label: 'rare', count: 1, ms: 1 });
    engine.startJobs();
    // Handed back, its logged start taken out: the next claim may start it at once.
    await expect.poll(() => settled(engine, [id!], 'rare'), { timeout: 5_000 }).toBe(true);
    expect(ofLabel(await steps(engine), 'rare')).toHaveLength(1);
    expect((await results(engine, [id!], 'rare'))[0]).toMatchObject({ kind: 'success' });
  });

  it('limits starts per group, each group on its own', async () => {
    const engine = await startApp('pools', driver);
    const ids = [
      ...(await enqueueLimited(engine, {
        pool: 'perGroupRate',
        label: 'x',
        count: 15,
        ms: 1,
        group: 'x',
      })),
      ...(await enqueueLimited(engine, {
        pool: 'perGroupRate',
        label: 'y',
        count: 15,
        ms: 1,
        group: 'y',
      })),
    ];
    engine.startJobs();
    await expect.poll(() => settled(engine, ids, 'perGroupRate'), { timeout: 10_000 }).toBe(true);
    const ran = await steps(engine);
    for (const group of ['x', 'y']) {
      const starts = ofLabel(ran, group).map((step) => step.start);
      expect(starts).toHaveLength(15);
      expect(busiestWindow(starts, 500)).toBeLessThanOrEqual(5);
    }
    const bad = await engine.mutation('graph:enqueueLimited', {
      pool: 'tenants',
      label: 'b',
      count: 1,
      ms: 1,
      group: '',
    });
    expect(!bad.ok && bad.error.message).toMatch(/group must be a string of 1 to 256 characters/);
  });

  it('aborts an action at its timeout: its signal says so, and the attempt fails', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const id = (await call(
      engine.mutation('graph:enqueueLong', { label: 'slow', ms: 400, beat: false, pool: 'quick' }),
    )) as string;
    await expect.poll(() => settled(engine, [id], 'quick'), { timeout: 10_000 }).toBe(true);
    expect((await results(engine, [id], 'quick'))[0]).toEqual({
      kind: 'failed',
      error: 'timed out after 150 ms',
    });
    await expect
      .poll(async () => named(await steps(engine), 'slow').map((step) => step.inputs[0]))
      .toEqual(['aborted: timed out after 150 ms']);
  });

  it('tells a running action its job was canceled, and frees its slot once it stops', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const enqueue = async (label: string, ms: number) =>
      (await call(engine.mutation('graph:enqueueStoppable', { label, ms }))) as string;
    const long = await enqueue('long', 60_000);
    const next = await enqueue('next', 1);
    await expect.poll(async () => named(await steps(engine), 'long:started').length).toBe(1);
    await call(engine.mutation('graph:cancelStoppable', { id: long }));
    await expect
      .poll(async () => named(await steps(engine), 'long').map((step) => step.inputs[0]))
      .toEqual(['aborted: the job was canceled']);
    expect((await results(engine, [long], 'stoppable'))[0]).toEqual({ kind: 'canceled' });
    // The one slot was the canceled job's until its code stopped; then the next one runs.
    await expect.poll(() => settled(engine, [next], 'stoppable')).toBe(true);
    expect((await results(engine, [next], 'stoppable'))[0]).toEqual({
      kind: 'success',
      returnValue: 'next',
    });
  });

  it.runIf(driver.name === 'postgres')(
    'tells a running action its job was canceled by another process, within a third of a lease',
    async () => {
      const place = driver.place();
      const runner = await startApp('pools', driver, {
        store: await place.open(),
        jobs: { leaseMs: 900 },
      });
      const other = await startApp('pools', driver, { store: await place.open() });
      const long = (await call(
        runner.mutation('graph:enqueueStoppable', { label: 'far', ms: 60_000 }),
      )) as string;
      await expect.poll(async () => named(await steps(runner), 'far:started').length).toBe(1);
      await call(other.mutation('graph:cancelStoppable', { id: long }));
      await expect
        .poll(async () => named(await steps(runner), 'far').map((step) => step.inputs[0]), {
          timeout: 5_000,
        })
        .toEqual(['aborted: the job was canceled']);
    },
  );

  it('gives up an action that stops beating (its signal says why) and retries it; one that beats runs long', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const steady = (await call(
      engine.mutation('graph:enqueueLong', { label: 'steady', ms: 600, beat: true }),
    )) as string;
    const silent = (await call(
      engine.mutation('graph:enqueueLong', { label: 'silent', ms: 600, beat: false }),
    )) as string;
    await expect
      .poll(() => settled(engine, [steady, silent], 'beats'), { timeout: 10_000 })
      .toBe(true);
    const [steadyResult, silentResult] = await results(engine, [steady, silent], 'beats');
    expect(steadyResult).toEqual({ kind: 'success', returnValue: 'steady' });
    expect(silentResult?.kind).toBe('failed');
    expect(silentResult?.error).toBe('no heartbeat for 200 ms');
    // Its code saw the abort, both attempts (the policy allows two).
    await expect.poll(async () => named(await steps(engine), 'silent').length).toBe(2);
    const ran = await steps(engine);
    expect(named(ran, 'silent').map((step) => step.inputs[0])).toEqual([
      'aborted: no heartbeat for 200 ms',
      'aborted: no heartbeat for 200 ms',
    ]);
    expect(named(ran, 'steady').map((step) => step.inputs[0])).toEqual(['ok']);
  });
});
