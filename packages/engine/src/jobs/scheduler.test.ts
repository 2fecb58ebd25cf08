/**
 * ctx.scheduler and the job runner on both drivers: timing, atomicity, outcomes, cancellation,
 * the `_scheduled_functions` table, restarts, and exactly-once mutations with two runners.
 */
import type { JSONValue, Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { DRIVERS, startApp, timerOverflows } from '../test-harness.js';
import {
  getScheduled,
  insertScheduled,
  settle,
  sweepCompleted,
  type SweepPosition,
} from './scheduled.js';
import { call } from './test-calls.js';

interface Scheduled {
  _id: string;
  name: string;
  args: Value[];
  scheduledTime: number;
  completedTime?: number;
  state: { kind: string; error?: string };
}

const count = (engine: Engine, label: string) =>
  call(engine.query('scheduling:count', { label })) as Promise<number>;
const scheduled = (engine: Engine) =>
  call(engine.query('scheduling:scheduled', {})) as Promise<unknown> as Promise<Scheduled[]>;
const stateOf = async (engine: Engine, id: string) =>
  ((await call(engine.query('scheduling:scheduledOne', { id }))) as unknown as Scheduled).state;

describe.each(DRIVERS)('scheduled functions on $name', (driver) => {
  it('runs a mutation after its delay, once, and records it in _scheduled_functions', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const before = Date.now();
    const id = (await call(
      engine.mutation('scheduling:later', { label: 'a', delayMs: 150 }),
    )) as string;
    const pending = (await scheduled(engine)).find((job) => job._id === id)!;
    expect(pending).toMatchObject({ name: 'scheduling:record', args: [{ label: 'a' }] });
    expect(pending.state).toEqual({ kind: 'pending' });
    expect(pending.scheduledTime).toBeGreaterThanOrEqual(before + 150);
    await expect.poll(() => count(engine, 'a'), { timeout: 5000 }).toBe(1);
    const [run] = (await call(engine.query('scheduling:runs', { label: 'a' }))) as Array<{
      at: number;
    }>;
    expect(run!.at).toBeGreaterThanOrEqual(pending.scheduledTime);
    const done = (await scheduled(engine)).find((job) => job._id === id)!;
    expect(done.state).toEqual({ kind: 'success' });
    expect(done.completedTime).toBeGreaterThanOrEqual(pending.scheduledTime);
    // Nothing runs twice.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await count(engine, 'a')).toBe(1);
  });

  it('waits quietly for a run beyond what a Node timer can wait, and refuses one over 5 years off', async () => {
    const overflows = timerOverflows();
    const engine = await startApp('jobs', driver, { jobs: {} });
    const year = 365 * 24 * 60 * 60 * 1000;
    const month = year / 12;
    const id = (await call(
      engine.mutation('scheduling:later', { label: 'month', delayMs: month }),
    )) as string;
    const refused = async (args: Record<string, JSONValue>) => {
      const outcome = await engine.mutation(
        'delayMs' in args ? 'scheduling:later' : 'scheduling:at',
        args,
      );
      return outcome.ok ? null : outcome.error.message;
    };
    expect(await refused({ label: 'x', delayMs: 6 * year })).toMatch(
      /ctx.scheduler: cannot run scheduling:record at \d{4}-.* \(more than 5 years away\): runs are scheduled within 5 years of now/,
    );
    expect(await refused({ label: 'x', time: 0 })).toMatch(
      /cannot run scheduling:record at 1970-01-01T00:00:00.000Z \(more than 5 years ago\)/,
    );
    expect(await refused({ label: 'x', time: 1e300 })).toMatch(
      /cannot run scheduling:record at 1e\+300 ms since 1970 \(more than 5 years away\)/,
    );
    // Long enough for a runner whose timer overflowed to wake hundreds of times.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(overflows()).toBe(0);
    expect((await scheduled(engine)).map((job) => job._id)).toEqual([id]);
    expect(await stateOf(engine, id)).toEqual({ kind: 'pending' });
  });

  it('runs due jobs in time order, and a job due in the past at once', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    await call(engine.mutation('scheduling:later', { label: 'late', delayMs: 300 }));
    await call(engine.mutation('scheduling:later', { label: 'early', delayMs: 100 }));
    await call(engine.mutation('scheduling:at', { label: 'past', time: Date.now() - 60_000 }));
    await expect.poll(() => count(engine, 'late'), { timeout: 5000 }).toBe(1);
    const at = async (label: string) =>
      ((await call(engine.query('scheduling:runs', { label }))) as Array<{ at: number }>)[0]!.at;
    expect(await at('past')).toBeLessThanOrEqual(await at('early'));
    expect(await at('early')).toBeLessThan(await at('late'));
  });

  it('schedules nothing when the mutation that scheduled fails', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const outcome = await engine.mutation('scheduling:later', {
      label: 'never',
      delayMs: 0,
      thenThrow: true,
    });
    expect(outcome.ok).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await scheduled(engine)).toEqual([]);
    expect(await count(engine, 'never')).toBe(0);
  });

  it('deletes the records of jobs that ended longer than the retention ago, and only those', async () => {
    // Upkeep every 100 ms; records kept for 3 s after their end.
    const engine = await startApp('jobs', driver, { jobs: { leaseMs: 300, retentionMs: 3000 } });
    const done = (await call(
      engine.mutation('scheduling:later', { label: 'kept', delayMs: 0 }),
    )) as string;
    const failed = (await call(engine.mutation('scheduling:scheduleFailing', {}))) as string;
    const waiting = (await call(
      engine.mutation('scheduling:later', { label: 'waiting', delayMs: 60 * 60_000 }),
    )) as string;
    await expect.poll(() => stateOf(engine, done), { timeout: 5000 }).toEqual({ kind: 'success' });
    await expect
      .poll(() => stateOf(engine, failed), { timeout: 5000 })
      .toMatchObject({
        kind: 'failed',
      });
    // Within the retention, they are there to be read; past it, gone; the pending one stays.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await scheduled(engine)).map((job) => job._id).sort()).toEqual(
      [done, failed, waiting].sort(),
    );
    await expect
      .poll(async () => (await scheduled(engine)).map((job) => job._id), { timeout: 10_000 })
      .toEqual([waiting]);
    expect(await count(engine, 'kept')).toBe(1);
  });

  it('sweeps old records page by page, every final state, stepping over those that ended late', async () => {
    const engine = await startApp('jobs', driver);
    const cutoff = Date.now() - 60_000;
    const states = [{ kind: 'success' }, { kind: 'failed', error: 'no' }, { kind: 'canceled' }];
    const late: string[] = [];
    await engine.store.write(async (tx) => {
      for (let i = 0; i < 1_300; i++) {
        // Scheduled before the cutoff; every tenth ended after it (a long action, say).
        const id = await insertScheduled(
          tx,
          'scheduling:record',
          { label: 'old' },
          cutoff - 5_000 + i,
          1,
          null,
        );
        const endedLate = i % 10 === 0;
        if (endedLate) late.push(id);
        // Most succeed: more than a page of one state.
        const state = states[i % 5 === 0 ? 1 : i % 7 === 0 ? 2 : 0] as Parameters<typeof settle>[2];
        await settle(tx, (await getScheduled(tx, id))!, state, endedLate ? cutoff + 1 : cutoff - 1);
      }
      late.push(
        await insertScheduled(tx, 'scheduling:record', { label: 'due' }, cutoff - 1, 1, null),
      );
    });
    let at: SweepPosition | null = null;
    let pages = 0;
    do {
      const from: SweepPosition | null = at;
      ({ value: at } = await engine.store.write((tx) => sweepCompleted(tx, cutoff, from)));
      pages++;
    } while (at !== null);
    expect(pages).toBeGreaterThanOrEqual(4);
    expect((await scheduled(engine)).map((job) => job._id).sort()).toEqual(late.sort());
  });

  it('marks a scheduled mutation that throws as failed, with its error, and writes nothing', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const id = (await call(engine.mutation('scheduling:scheduleFailing', {}))) as string;
    await expect
      .poll(() => stateOf(engine, id), { timeout: 5000 })
      .toMatchObject({
        kind: 'failed',
      });
    expect((await stateOf(engine, id)).error).toMatch(/this scheduled mutation always fails/);
  });

  it('runs actions, recording success and failure', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const good = (await call(
      engine.mutation('scheduling:scheduleWork', { label: 'w', ms: 20 }),
    )) as string;
    const bad = (await call(
      engine.mutation('scheduling:scheduleWork', { label: 'x', ms: 20, fail: true }),
    )) as string;
    await expect.poll(() => stateOf(engine, good), { timeout: 5000 }).toEqual({ kind: 'success' });
    await expect
      .poll(() => stateOf(engine, bad), { timeout: 5000 })
      .toMatchObject({
        kind: 'failed',
      });
    expect((await stateOf(engine, bad)).error).toMatch(/work x failed/);
    expect(await count(engine, 'w')).toBe(1);
    expect(await count(engine, 'x')).toBe(0);
  });

  it("shows a running action's record in Convex's shape: the runner's lease stays hidden", async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const id = (await call(
      engine.mutation('scheduling:scheduleWork', { label: 'lease', ms: 1500 }),
    )) as string;
    await expect.poll(() => stateOf(engine, id), { timeout: 5000 }).toEqual({ kind: 'inProgress' });
    // The stored record holds the lease; every way user code reads it leaves it out.
    const stored = await engine.store.read((tx) => getScheduled(tx, id));
    expect(typeof stored?.owner).toBe('string');
    expect(stored?.leaseUntil).toBeGreaterThan(Date.now() - 60_000);
    // And the function's signature where it was scheduled, for rollouts (fleet-view.ts).
    expect(stored?.sig).toMatch(/^[0-9a-f]{16}$/);
    const convexFields = ['_creationTime', '_id', 'args', 'name', 'scheduledTime', 'state'];
    const one = (await call(engine.query('scheduling:scheduledOne', { id }))) as object;
    const listed = (await scheduled(engine)).find((job) => job._id === id)!;
    const { page } = (await call(
      engine.query('scheduling:scheduledPage', { paginationOpts: { numItems: 10, cursor: null } }),
    )) as unknown as { page: Scheduled[] };
    const paged = page.find((job) => job._id === id)!;
    for (const seen of [one, listed, paged]) expect(Object.keys(seen).sort()).toEqual(convexFields);
    await expect.poll(() => stateOf(engine, id), { timeout: 5000 }).toEqual({ kind: 'success' });
  });

  it('fails a scheduled action that outlives its time limit, and frees its slot', async () => {
    const engine = await startApp('jobs', driver, {
      jobs: { parallelism: 1, actionTimeoutMs: 300 },
    });
    const hung = (await call(engine.mutation('scheduling:scheduleHang', {}))) as string;
    const after = (await call(
      engine.mutation('scheduling:scheduleWork', { label: 'after', ms: 1 }),
    )) as string;
    await expect
      .poll(() => stateOf(engine, hung), { timeout: 5000 })
      .toEqual({
        kind: 'failed',
        error: 'scheduling:hang did not finish within 0.3 s, the time limit of a scheduled action',
      });
    // The only slot was the hung action's: the next job runs once it was given up.
    await expect.poll(() => stateOf(engine, after), { timeout: 5000 }).toEqual({ kind: 'success' });
  });

  it('schedules from actions, and cancels from mutations and actions', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    await call(engine.action('scheduling:fromAction', { label: 'act' }));
    await expect.poll(() => count(engine, 'act'), { timeout: 5000 }).toBe(1);

    const first = (await call(
      engine.mutation('scheduling:later', { label: 'c1', delayMs: 300 }),
    )) as string;
    const second = (await call(
      engine.mutation('scheduling:later', { label: 'c2', delayMs: 300 }),
    )) as string;
    await call(engine.mutation('scheduling:cancel', { id: first }));
    await call(engine.action('scheduling:cancelFromAction', { id: second }));
    expect(await stateOf(engine, first)).toEqual({ kind: 'canceled' });
    expect(await stateOf(engine, second)).toEqual({ kind: 'canceled' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await count(engine, 'c1')).toBe(0);
    expect(await count(engine, 'c2')).toBe(0);
  });

  it('refuses bad scheduling with clear errors', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    const tooMany = await engine.mutation('scheduling:many', { label: 'm', count: 1001 });
    expect(tooMany.ok).toBe(false);
    if (!tooMany.ok) expect(tooMany.error.message).toMatch(/more than 1000 functions/);
    const aQuery = await engine.mutation('scheduling:scheduleQuery', {});
    expect(aQuery.ok).toBe(false);
    if (!aQuery.ok) expect(aQuery.error.message).toMatch(/scheduling:count is a query/);
    const notAJob = await engine.mutation('scheduling:cancel', { id: 'nonsense' });
    expect(notAJob.ok).toBe(false);
    expect(await scheduled(engine)).toEqual([]);
  });

  it('runs hundreds of jobs scheduled at once, each exactly once', async () => {
    const engine = await startApp('jobs', driver, { jobs: {} });
    await call(engine.mutation('scheduling:many', { label: 'bulk', count: 300 }));
    await expect.poll(() => count(engine, 'bulk'), { timeout: 20_000 }).toBe(300);
    const states = new Set((await scheduled(engine)).map((job) => job.state.kind));
    expect([...states]).toEqual(['success']);
  });

  it('keeps jobs across a restart and runs them when the server is back', async () => {
    const place = driver.place();
    const first = await startApp('jobs', driver, { store: await place.open(), jobs: {} });
    await call(first.mutation('scheduling:later', { label: 'r', delayMs: 400 }));
    await first.stopJobs(0);
    await first.store.close();

    const second = await startApp('jobs', driver, { store: await place.open(), jobs: {} });
    await expect.poll(() => count(second, 'r'), { timeout: 5000 }).toBe(1);
  });

  // SQLite is one Sleigh process's embedded file; several runners on one database is PostgreSQL's.
  it.runIf(driver.name === 'postgres')(
    'runs each mutation exactly once when two runners share the database',
    async () => {
      const place = driver.place();
      const a = await startApp('jobs', driver, { store: await place.open() });
      const b = await startApp('jobs', driver, { store: await place.open() });
      await call(a.mutation('scheduling:many', { label: 'two', count: 200 }));
      // Both start at once over the same due jobs.
      a.startJobs({ exclusive: false });
      b.startJobs({ exclusive: false });
      await expect.poll(() => count(a, 'two'), { timeout: 30_000 }).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await count(a, 'two')).toBe(200);
      const runs = (await call(a.query('scheduling:runs', { label: 'two' }))) as unknown[];
      expect(runs).toHaveLength(200);
    },
  );

  it('takes back an action whose runner died once its lease runs out, and runs it again', async () => {
    const place = driver.place();
    const doomed = await startApp('jobs', driver, {
      store: await place.open(),
      jobs: { leaseMs: 300, exclusive: false, log: () => undefined },
    });
    const id = (await call(
      doomed.mutation('scheduling:scheduleWork', { label: 'lease', ms: 600 }),
    )) as string;
    await expect
      .poll(() => stateOf(doomed, id), { timeout: 5000 })
      .toEqual({
        kind: 'inProgress',
      });
    // The runner's process "dies": its store goes away with the action still running, so the
    // action can neither record its run nor renew its lease.
    await doomed.store.close();

    const rescuer = await startApp('jobs', driver, {
      store: await place.open(),
      jobs: { leaseMs: 300, exclusive: false },
    });
    await expect
      .poll(() => stateOf(rescuer, id), { timeout: 10_000 })
      .toEqual({
        kind: 'success',
      });
    expect(await count(rescuer, 'lease')).toBe(1);
  });
});
