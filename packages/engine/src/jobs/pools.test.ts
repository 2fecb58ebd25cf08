/**
 * Workpools on both drivers, through @sleigh/workpool inside real functions: exact
 * parallelism, atomic enqueue, retries with backoff, non-retryable errors, timeouts, onComplete,
 * exactly-once mutation jobs, cancellation, isolation between pools, pool.ctx, results, bad
 * input, expired results, and jobs taken back from a runner that died.
 */
import type { JSONValue, Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { DRIVERS, startApp, timerOverflows } from '../test-harness.js';
import { getPoolJob, saveJob, type PoolJob } from './pool-jobs.js';
import { holdingsId, POOL_HOLDINGS, type Holdings } from './pool-holdings.js';
import { renewAndTakeBack, type LeaseHolder } from './pool-upkeep.js';
import { call } from './test-calls.js';
import { writeWithRetry } from './write-retry.js';

interface Event {
  label: string;
  at: number;
  peak?: number;
}
type Status = { state: string; previousAttempts?: number };
type Result = { kind: string; returnValue?: Value; error?: string } | null;

/** The runner that claimed a job (written claims name it). */
const ownerOf = (job: PoolJob | null): string => {
  if (job?.owner === undefined) throw new Error(`no owner: ${JSON.stringify(job)}`);
  return job.owner;
};
const enqueue = async (engine: Engine, args: Record<string, JSONValue>) =>
  (await call(engine.mutation('pools:enqueueWork', args))) as string[];
const events = async (engine: Engine, label: string) =>
  (await call(engine.query('pools:events', { label }))) as unknown as Event[];
const statuses = async (engine: Engine, pool: string, ids: string[]) =>
  (await call(engine.query('pools:status', { pool, ids }))) as unknown as Status[];
const result = async (engine: Engine, pool: string, id: string) =>
  (await call(engine.query('pools:result', { pool, id }))) as unknown as Result;
const allFinished = async (engine: Engine, pool: string, ids: string[]) =>
  (await statuses(engine, pool, ids)).every((status) => status.state === 'finished');
const runningCount = async (engine: Engine, pool: string, ids: string[]) =>
  (await statuses(engine, pool, ids)).filter((status) => status.state === 'running').length;
const peak = async (engine: Engine, label: string) =>
  Math.max(0, ...(await events(engine, `${label}:peak`)).map((event) => event.peak ?? 0));
/** The most attempts of `label` running at once, from the starts and ends they recorded. */
const mostAtOnce = async (engine: Engine, label: string) => {
  const starts = (await events(engine, label)).map((event) => ({ at: event.at, delta: 1 }));
  const ends = (await events(engine, `${label}:peak`)).map((event) => ({
    at: event.at,
    delta: -1,
  }));
  let now = 0;
  let most = 0;
  for (const { delta } of [...starts, ...ends].sort((x, y) => x.at - y.at || x.delta - y.delta)) {
    now += delta;
    most = Math.max(most, now);
  }
  return { starts: starts.length, most };
};

/**
 * Waits for two jobs taken back from gone runners to finish: `once` (taken back once) runs as
 * if nothing happened; `thrice` (its third take-back) counts a failed attempt, retried per the
 * pool's policy.
 */
const expectChargedThird = async (engine: Engine, once: string, thrice: string) => {
  await expect
    .poll(() => allFinished(engine, 'retrying', [once, thrice]), { timeout: 10_000 })
    .toBe(true);
  const jobs = (await call(engine.query('pools:jobs', {}))) as unknown as PoolJob[];
  const job = (id: string) => jobs.find((candidate) => candidate._id === id);
  expect(job(once)).toMatchObject({ attempt: 1, failures: [], takeBacks: 1 });
  expect(job(thrice)).toMatchObject({ attempt: 2, takeBacks: 3 });
  expect(job(thrice)?.failures.map((failure) => failure.error)).toEqual([
    'the process holding it stopped 3 times before it was known to start (it may be what stops them)',
  ]);
};

describe.each(DRIVERS)('workpools on $name', (driver) => {
  it('runs actions with exactly maxParallelism at once, and keeps their results', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = await enqueue(engine, { pool: 'narrow', label: 'p', ms: 60, count: 12 });
    expect(ids).toHaveLength(12);
    // What status() says matches: never more than 3 running, the rest pending, until done.
    let sawPending = false;
    while (!(await allFinished(engine, 'narrow', ids))) {
      const states = (await statuses(engine, 'narrow', ids)).map((status) => status.state);
      expect(states.filter((state) => state === 'running').length).toBeLessThanOrEqual(3);
      sawPending ||= states.includes('pending');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(sawPending).toBe(true);
    expect(await peak(engine, 'p')).toBe(3);
    expect(await events(engine, 'p')).toHaveLength(12);
    expect(await result(engine, 'narrow', ids[0]!)).toEqual({
      kind: 'success',
      returnValue: 'p done',
    });
  });

  it('keeps the leases of jobs waiting in its queue, so a long queue runs once', async () => {
    // The queue outlasts the lease several times over: renewals must neither lose a job to a
    // takeover nor be mistaken for a cancel.
    const engine = await startApp('pools', driver, { jobs: { leaseMs: 500 } });
    const ids = await enqueue(engine, { pool: 'narrow', label: 'long', ms: 150, count: 27 });
    await expect.poll(() => allFinished(engine, 'narrow', ids), { timeout: 15_000 }).toBe(true);
    expect(await events(engine, 'long')).toHaveLength(27);
    const results = await Promise.all(ids.map((id) => result(engine, 'narrow', id)));
    expect(results.filter((r) => r?.kind !== 'success')).toEqual([]);
  });

  it('enqueues nothing when the mutation that enqueued fails', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const outcome = await engine.mutation('pools:enqueueWork', {
      pool: 'narrow',
      label: 'never',
      ms: 1,
      count: 5,
      thenThrow: true,
    });
    expect(outcome.ok).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await call(engine.query('pools:jobs', {}))).toEqual([]);
    expect(await events(engine, 'never')).toEqual([]);
  });

  it('retries failed actions with growing backoff, and stops at a non-retryable error', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const [flaky] = await enqueue(engine, {
      pool: 'retrying',
      label: 'flaky',
      ms: 1,
      failTimes: 2,
    });
    const [hopeless] = await enqueue(engine, {
      pool: 'retrying',
      label: 'hopeless',
      ms: 1,
      nonRetryable: true,
    });
    const [doomed] = await enqueue(engine, {
      pool: 'retrying',
      label: 'doomed',
      ms: 1,
      failTimes: 9,
    });
    await expect
      .poll(() => allFinished(engine, 'retrying', [flaky!, hopeless!, doomed!]), {
        timeout: 10_000,
      })
      .toBe(true);

    expect(await result(engine, 'retrying', flaky!)).toEqual({
      kind: 'success',
      returnValue: 'flaky done',
    });
    const times = (await events(engine, 'flaky')).map((event) => event.at);
    expect(times).toHaveLength(3);
    // Backoff 50 ms then 100 ms, with jitter down to half.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(25);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(50);

    expect(await events(engine, 'hopeless')).toHaveLength(1);
    expect((await result(engine, 'retrying', hopeless!))?.error).toMatch(/this cannot work/);
    expect(await events(engine, 'doomed')).toHaveLength(3);
    expect((await result(engine, 'retrying', doomed!))?.error).toMatch(/attempt 3 failed/);
  });

  it('reports previous attempts while a job waits to be retried', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const [id] = await enqueue(engine, { pool: 'narrow', label: 'slow', ms: 300, retry: true });
    await expect
      .poll(() => statuses(engine, 'narrow', [id!]))
      .toEqual([{ state: 'running', previousAttempts: 0 }]);
    await expect
      .poll(() => statuses(engine, 'narrow', [id!]), { timeout: 5000 })
      .toEqual([{ state: 'finished' }]);
  });

  it('fails an action that outlives actionTimeoutMs', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const [id] = await enqueue(engine, { pool: 'timeouts', label: 'late', ms: 600 });
    await expect
      .poll(() => result(engine, 'timeouts', id!), { timeout: 5000 })
      .toEqual({
        kind: 'failed',
        error: 'timed out after 150 ms',
      });
  });

  it('calls onComplete once per job with its result and context, also when canceled', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const [ok] = await enqueue(engine, { pool: 'narrow', label: 'c1', ms: 1, onComplete: true });
    const [bad] = await enqueue(engine, {
      pool: 'narrow',
      label: 'c2',
      ms: 1,
      nonRetryable: true,
      onComplete: true,
    });
    const [later] = await enqueue(engine, {
      pool: 'narrow',
      label: 'c3',
      ms: 1,
      runAfter: 60_000,
      onComplete: true,
    });
    await call(engine.mutation('pools:cancel', { pool: 'narrow', id: later! }));
    const done = async () =>
      (await call(engine.query('pools:completions', {}))) as unknown as Array<{
        workId: string;
        context: { label: string };
        result: Result;
      }>;
    await expect.poll(async () => (await done()).length, { timeout: 5000 }).toBe(3);
    const byId = new Map((await done()).map((row) => [row.workId, row]));
    expect(byId.get(ok!)).toMatchObject({
      context: { label: 'c1' },
      result: { kind: 'success', returnValue: 'c1 done' },
    });
    expect(byId.get(bad!)?.result).toMatchObject({ kind: 'failed' });
    expect(byId.get(later!)).toMatchObject({
      context: { label: 'c3' },
      result: { kind: 'canceled' },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await done()).toHaveLength(3);
    expect(await events(engine, 'c3')).toEqual([]);
  });

  it('runs mutation jobs exactly once, without conflicts in a pool of one', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = (await call(
      engine.mutation('pools:enqueueBumps', { pool: 'counter', name: 'n', count: 40 }),
    )) as string[];
    await expect.poll(() => allFinished(engine, 'counter', ids), { timeout: 10_000 }).toBe(true);
    expect(await call(engine.query('pools:counter', { name: 'n' }))).toBe(40);
    const values = await Promise.all(ids.map((id) => result(engine, 'counter', id)));
    expect(values.map((value) => value?.returnValue).sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    // A failing mutation job writes nothing and reports its error.
    const [failing] = (await call(
      engine.mutation('pools:enqueueBumps', { pool: 'counter', name: 'n', count: 1, fail: true }),
    )) as string[];
    await expect
      .poll(() => result(engine, 'counter', failing!), { timeout: 5000 })
      .toMatchObject({
        kind: 'failed',
        error: expect.stringMatching(/bump n refused/) as unknown as string,
      });
    expect(await call(engine.query('pools:counter', { name: 'n' }))).toBe(40);
  });

  it('runs query jobs and returns their value', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    await call(engine.mutation('pools:enqueueBumps', { pool: 'counter', name: 'q', count: 2 }));
    await expect.poll(() => call(engine.query('pools:counter', { name: 'q' }))).toBe(2);
    const id = (await call(engine.mutation('pools:enqueueRead', { name: 'q' }))) as string;
    await expect
      .poll(() => result(engine, 'narrow', id), { timeout: 5000 })
      .toEqual({
        kind: 'success',
        returnValue: 2,
      });
  });

  it('cancels pending jobs one by one and all at once', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = await enqueue(engine, { pool: 'flood', label: 'x', ms: 200, count: 10 });
    await call(engine.mutation('pools:cancel', { pool: 'flood', id: ids[9]! }));
    expect(await result(engine, 'flood', ids[9]!)).toEqual({ kind: 'canceled' });
    const canceled = (await call(engine.mutation('pools:cancelAll', { pool: 'flood' }))) as number;
    expect(canceled).toBe(9);
    await expect.poll(() => allFinished(engine, 'flood', ids), { timeout: 5000 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    // At most the two that had started ran; none of the others.
    expect((await events(engine, 'x')).length).toBeLessThanOrEqual(2);
  });

  const twoServers = driver.name === 'postgres' ? ', on both of two servers' : '';
  it(`pauses a pool: what runs finishes, nothing starts until it resumes${twoServers}`, async () => {
    const place = driver.place();
    const a = await startApp('pools', driver, { store: await place.open(), jobs: {} });
    const b =
      twoServers === ''
        ? a
        : await startApp('pools', driver, { store: await place.open(), jobs: {} });
    const setPaused = async (engine: Engine, paused: boolean) =>
      (await call(engine.mutation('pools:setPaused', { pool: 'narrow', paused }))) as boolean;
    const [long] = await enqueue(a, { pool: 'narrow', label: 'long', ms: 500 });
    await expect.poll(() => runningCount(a, 'narrow', [long!]), { timeout: 5000 }).toBe(1);
    expect(await setPaused(a, true)).toBe(false);
    expect(await setPaused(b, true)).toBe(true);
    // Enqueued on either server while paused: accepted, and nothing starts.
    const waiting = [
      ...(await enqueue(a, { pool: 'narrow', label: 'held', ms: 10, count: 3 })),
      ...(await enqueue(b, { pool: 'narrow', label: 'held', ms: 10, count: 3 })),
    ];
    // Another pool is not paused.
    const [other] = await enqueue(b, { pool: 'other', label: 'free', ms: 1 });
    await expect.poll(() => allFinished(a, 'other', [other!]), { timeout: 5000 }).toBe(true);
    // The running job finishes while the pool is paused.
    await expect.poll(() => allFinished(a, 'narrow', [long!]), { timeout: 5000 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await events(a, 'held')).toEqual([]);
    expect((await statuses(b, 'narrow', waiting)).map((status) => status.state)).toEqual(
      waiting.map(() => 'pending'),
    );
    const pools = (await call(a.query('_system/pools:pools', {}, { caller: 'admin' }))) as Array<{
      name: string;
      paused: boolean;
    }>;
    expect(pools.find((pool) => pool.name === 'narrow')?.paused).toBe(true);
    expect(pools.find((pool) => pool.name === 'other')?.paused).toBe(false);
    // Resumed from the other server: everything runs, within the pool's parallelism.
    expect(await setPaused(b, false)).toBe(true);
    await expect.poll(() => allFinished(a, 'narrow', waiting), { timeout: 5000 }).toBe(true);
    expect((await events(a, 'held')).length).toBe(6);
    expect((await mostAtOnce(a, 'held')).most).toBeLessThanOrEqual(3);
    const refused = await a.mutation(
      '_system/pools:setPaused',
      { pool: 'nowhere', paused: true },
      { caller: 'admin' },
    );
    expect(!refused.ok && refused.error.message).toMatch(/There is no workpool named "nowhere"/);
  });

  it("starts a job whose enqueue also changed its pool's options, at once", async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const [first] = await enqueue(engine, { pool: 'narrow', label: 'before', ms: 1 });
    await expect.poll(() => allFinished(engine, 'narrow', [first!]), { timeout: 5000 }).toBe(true);
    // The pool is known and idle: this enqueue claims its job directly, and rewrites `_pools`.
    const id = (await call(
      engine.mutation('pools:enqueueWidened', { label: 'widened' }),
    )) as string;
    // Not after a lease (30 s) runs out: the commit that changed the options hands it over.
    await expect.poll(() => allFinished(engine, 'narrow', [id]), { timeout: 3000 }).toBe(true);
  });

  it('never lets a flooded pool delay another', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    await enqueue(engine, { pool: 'flood', label: 'flood', ms: 100, count: 40 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = Date.now();
    const [id] = await enqueue(engine, { pool: 'other', label: 'urgent', ms: 1 });
    await expect
      .poll(() => result(engine, 'other', id!), { timeout: 5000 })
      .toMatchObject({
        kind: 'success',
      });
    const [started] = await events(engine, 'urgent');
    expect(started!.at - before).toBeLessThan(300);
    // Meanwhile the flood is still far from done.
    expect((await events(engine, 'flood')).length).toBeLessThan(20);
  });

  it("routes pool.ctx's runMutation and scheduler through the pool, and waits for results", async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const values = (await call(
      engine.action('pools:countThroughPool', { name: 'ctx', times: 10 }),
    )) as number[];
    expect([...values].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await expect.poll(() => call(engine.query('pools:counter', { name: 'ctx' }))).toBe(11);
    const [id] = await enqueue(engine, { pool: 'narrow', label: 'w', ms: 100 });
    expect(await call(engine.action('pools:wait', { pool: 'narrow', id: id! }))).toEqual({
      kind: 'success',
      returnValue: 'w done',
    });
  });

  it('runs jobs of a pool first enqueued into by a mutation that rolled back', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    // The first enqueue writes the pool's document; the second finds it, written by the same
    // transaction, which then rolls back: the pool must not be taken as stored.
    const failed = await engine.mutation('pools:enqueueTwiceThenFail', {
      pool: 'other',
      label: 'undone',
    });
    expect(failed.ok).toBe(false);
    const [id] = await enqueue(engine, { pool: 'other', label: 'after-undo', ms: 1 });
    await expect
      .poll(() => result(engine, 'other', id!), { timeout: 5000 })
      .toEqual({ kind: 'success', returnValue: 'after-undo done' });
    expect(await events(engine, 'undone')).toEqual([]);
  });

  it('refuses bad enqueues with clear errors', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const error = async (what: string) => {
      const outcome = await engine.mutation('pools:enqueueBad', { what });
      return outcome.ok ? null : outcome.error.message;
    };
    expect(await error('wrong kind')).toMatch(/pools:bump is a mutation, not an action/);
    expect(await error('bad args')).toMatch(/Invalid arguments for pools:work/);
    expect(await error('bad pool')).toMatch(/name must be 1 to 64 letters/);
    expect(await error('bad parallelism')).toMatch(/maxParallelism must be between 1 and 1000/);
    expect(await error('retry not a policy')).toMatch(
      /Workpool "narrow": retry must be true, false or \{ maxAttempts, initialBackoffMs, base \}, not 3/,
    );
    expect(await error('too far off')).toMatch(
      /Workpool "narrow": cannot run a job at \d{4}-.* \(more than 5 years away\)/,
    );
    expect(await error('runAfter NaN')).toMatch(/runAfter must be a finite number of ms, not NaN/);
    expect(await error('name not a string')).toMatch(/a job's name must be a string .*, not 5/);
    expect(await error('timeout 0')).toMatch(
      /Workpool "instant": actionTimeoutMs must be more than 0/,
    );
    expect(await error('parallelism NaN')).toMatch(
      /Workpool "nan": maxParallelism must be a number ≥ 0, not "NaN"/,
    );
    expect(await error('limit beyond int64')).toMatch(
      /cancelAll: limit must be a whole number up to 9007199254740991, not 100000000000000000000/,
    );
    expect(await error('function undefined')).toMatch(
      /Workpool: the function to run is undefined; pass a function reference such as internal\.emails\.send/,
    );
    expect(await error('args leave no room')).toMatch(
      /Workpool "narrow": the job for pools:work is \d+ bytes \(its arguments, mostly\); a new job may take at most 1015808 bytes/,
    );
    expect(await error('backoff beyond 5 years')).toMatch(
      /retry\.initialBackoffMs must be at most 5 years/,
    );
    expect(await error('context not as onComplete takes it')).toMatch(
      /Invalid arguments for pools:onDoneLabeled: `context`: expected an object, got float64 5$/,
    );
    const fromQuery = await engine.query('pools:enqueueFromQuery', {});
    expect(fromQuery.ok).toBe(false);
    if (!fromQuery.ok) expect(fromQuery.error.message).toMatch(/not available in a query/);
    expect(await call(engine.query('pools:jobs', {}))).toEqual([]);
  });

  it("holds a mutation's new jobs and scheduled functions to its transaction's byte limits", async () => {
    const engine = await startApp('pools', driver);
    for (const via of ['pool', 'scheduler'] as const) {
      const outcome = await engine.mutation('pools:enqueuePadded', { count: 17, kib: 990, via });
      expect(!outcome.ok && outcome.error.message).toMatch(
        via === 'pool'
          ? /Too many bytes written in a single function execution \(limit: 16777216 bytes\)/
          : /Too many bytes of arguments for scheduled functions in a single function execution \(limit: 16777216 bytes\)/,
      );
    }
    // Nothing of either was written; within the limit, both are.
    expect(await call(engine.query('pools:jobs', {}))).toEqual([]);
    expect(await engine.store.read((tx) => tx.count('_scheduled_functions'))).toBe(0);
    for (const via of ['pool', 'scheduler'] as const) {
      await call(engine.mutation('pools:enqueuePadded', { count: 2, kib: 990, via }));
    }
    expect(await call(engine.query('pools:jobs', {}))).toHaveLength(2);
    expect(await engine.store.read((tx) => tx.count('_scheduled_functions'))).toBe(2);
  });

  it('fails a job whose return value is too large to store, and its pool goes on', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const big = (await call(
      engine.mutation('pools:enqueueSized', { pool: 'counter', bytes: 1_100_000 }),
    )) as string;
    const [after] = await enqueue(engine, { pool: 'counter', label: 'after-big', ms: 1 });
    await expect
      .poll(() => allFinished(engine, 'counter', [big, after!]), { timeout: 10_000 })
      .toBe(true);
    expect(await result(engine, 'counter', big)).toMatchObject({
      kind: 'failed',
      error: expect.stringMatching(
        /^Sleigh could not store the outcome of this attempt: .*over the limit of 1048576 bytes/,
      ) as unknown,
    });
    expect(await result(engine, 'counter', after!)).toEqual({
      kind: 'success',
      returnValue: 'after-big done',
    });
  });

  it('keeps a cut copy of a very long error, and retries as usual', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const id = (await call(
      engine.mutation('pools:enqueueSized', { pool: 'retrying', bytes: 400_000, fail: true }),
    )) as string;
    await expect.poll(() => allFinished(engine, 'retrying', [id]), { timeout: 10_000 }).toBe(true);
    const ended = (await result(engine, 'retrying', id)) as { kind: string; error: string };
    expect(ended.kind).toBe('failed');
    expect(ended.error).toMatch(/e{1000}… \(cut: \d+ characters in all\)$/);
    expect(ended.error.length).toBeLessThan(8300);
    const jobs = (await call(engine.query('pools:jobs', {}))) as unknown as PoolJob[];
    const job = jobs.find((candidate) => candidate._id === id)!;
    expect(job.failures.map((failure) => failure.attempt)).toEqual([1, 2, 3]);
  });

  it('waits quietly for a job and an action timeout beyond what a Node timer can wait', async () => {
    const overflows = timerOverflows();
    const engine = await startApp('pools', driver, { jobs: {} });
    const month = 30 * 24 * 60 * 60 * 1000;
    const [far] = await enqueue(engine, { pool: 'narrow', label: 'far', ms: 1, runAfter: month });
    // Its timeout and heartbeat deadline are a month away too: it must not time out at once.
    const [long] = await enqueue(engine, { pool: 'patient', label: 'long', ms: 300 });
    await expect
      .poll(() => result(engine, 'patient', long!), { timeout: 5000 })
      .toEqual({ kind: 'success', returnValue: 'long done' });
    expect(await statuses(engine, 'narrow', [far!])).toEqual([
      { state: 'pending', previousAttempts: 0 },
    ]);
    expect(overflows()).toBe(0);
    // A delay below zero is now, as for ctx.scheduler.runAfter.
    const [past] = await enqueue(engine, { pool: 'narrow', label: 'past', ms: 1, runAfter: -1e16 });
    await expect
      .poll(() => result(engine, 'narrow', past!), { timeout: 5000 })
      .toEqual({ kind: 'success', returnValue: 'past done' });
  });

  it('never records the outcome of a run canceled while it ran over the job run again', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const starts = async () =>
      (await events(engine, 'again')).filter((event) => event.peak === undefined);
    const [id] = await enqueue(engine, { pool: 'counter', label: 'again', ms: 1000 });
    await expect.poll(starts).toHaveLength(1);
    await call(engine.mutation('pools:cancel', { pool: 'counter', id: id! }));
    expect(await call(engine.mutation('graph:rerun', { id: id! }))).toBe(1);
    // The canceled run goes on (an action is not stopped) and ends first; then the job's new
    // run starts, and the job ends with that run's outcome.
    await expect.poll(starts, { timeout: 10_000 }).toHaveLength(2);
    await expect.poll(() => allFinished(engine, 'counter', [id!]), { timeout: 10_000 }).toBe(true);
    const [first, second] = await starts();
    const jobs = (await call(engine.query('pools:jobs', {}))) as unknown as PoolJob[];
    const job = jobs.find((candidate) => candidate._id === id)!;
    expect(job).toMatchObject({ run: 1, attempt: 1, result: { kind: 'success' } });
    expect(job.startedAt).toBeGreaterThan(first!.at);
    expect(job.startedAt).toBeLessThanOrEqual(second!.at);
    expect(job.finishedAt).toBeGreaterThanOrEqual(second!.at + 1000);
  });

  it('cancels a job only through its own pool', async () => {
    const engine = await startApp('pools', driver, {});
    const [id] = await enqueue(engine, { pool: 'other', label: 'mine', ms: 1 });
    const outcome = await engine.mutation('pools:cancel', { pool: 'narrow', id: id! });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.error.message).toMatch(
        `Workpool "narrow": cannot cancel job ${id!}, which belongs to pool "other"`,
      );
    }
    expect(await result(engine, 'other', id!)).toBeNull();
    await call(engine.mutation('pools:cancel', { pool: 'other', id: id! }));
    expect(await result(engine, 'other', id!)).toEqual({ kind: 'canceled' });
  });

  it('deletes results once their ttl has passed', async () => {
    const engine = await startApp('pools', driver, { jobs: { leaseMs: 300 } });
    const [id] = await enqueue(engine, { pool: 'brief', label: 'b', ms: 1 });
    await expect.poll(() => result(engine, 'brief', id!)).toMatchObject({ kind: 'success' });
    await expect
      .poll(async () => ((await call(engine.query('pools:jobs', {}))) as unknown[]).length, {
        timeout: 5000,
      })
      .toBe(0);
    expect(await statuses(engine, 'brief', [id!])).toEqual([{ state: 'finished' }]);
  });

  it('deletes the jobs of a pool that keeps nothing as they finish or fail', async () => {
    // A lease of a minute: the upkeep's sweep runs at start, then not for 20 s.
    const engine = await startApp('pools', driver, { jobs: { leaseMs: 60_000 } });
    const jobCount = async () => ((await call(engine.query('pools:jobs', {}))) as unknown[]).length;
    const actions = await enqueue(engine, { pool: 'forgetful', label: 'f', ms: 1, count: 20 });
    const [doomed] = await enqueue(engine, {
      pool: 'forgetful',
      label: 'doomed',
      ms: 1,
      failTimes: 1,
      nonRetryable: true,
    });
    const [noted] = await enqueue(engine, {
      pool: 'forgetful',
      label: 'noted',
      ms: 1,
      onComplete: true,
    });
    const bumps = (await call(
      engine.mutation('pools:enqueueBumps', { pool: 'forgetful', name: 'forget', count: 10 }),
    )) as string[];
    expect(await jobCount()).toBeGreaterThan(0);
    await expect.poll(jobCount, { timeout: 5000 }).toBe(0);
    // Every one ran, once; the onComplete had its result; status says finished.
    expect((await events(engine, 'f')).length).toBe(20);
    expect((await events(engine, 'doomed')).length).toBe(1);
    expect(await call(engine.query('pools:counter', { name: 'forget' }))).toBe(10);
    const completions = (await call(engine.query('pools:completions', {}))) as Array<{
      workId: string;
      result: Result;
    }>;
    expect(completions).toEqual([
      expect.objectContaining({
        workId: noted,
        result: { kind: 'success', returnValue: 'noted done' },
      }),
    ]);
    const all = [...actions, doomed!, noted!, ...bumps];
    expect(await statuses(engine, 'forgetful', all)).toEqual(
      all.map(() => ({ state: 'finished' })),
    );
    expect(await result(engine, 'forgetful', actions[0]!)).toEqual({
      kind: 'failed',
      error: 'the job is unknown, or its result expired',
    });
  });

  it('starts nothing more once stopping: running jobs finish, queued ones stay pending', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = await enqueue(engine, { pool: 'narrow', label: 'stop', ms: 400, count: 6 });
    await expect.poll(() => runningCount(engine, 'narrow', ids)).toBe(3);
    await engine.stopJobs(5_000);
    const states = (await statuses(engine, 'narrow', ids)).map((status) => status.state).sort();
    expect(states).toEqual(['finished', 'finished', 'finished', 'pending', 'pending', 'pending']);
    expect((await events(engine, 'stop')).length).toBe(3);
  });

  it('sweeps every expired result at once, not a page per upkeep', async () => {
    // A lease of a minute: the upkeep runs at start, then not for 20 s.
    const place = driver.place();
    const first = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 60_000 },
    });
    const ids = (await call(
      first.mutation('pools:enqueueQuick', { pool: 'brief', count: 1_200 }),
    )) as string[];
    await expect.poll(() => allFinished(first, 'brief', ids), { timeout: 30_000 }).toBe(true);
    await first.stopJobs(0);
    // Every result's ttl (300 ms) has passed; the next runner's first upkeep deletes them all.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const second = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 60_000 },
    });
    await expect
      .poll(async () => ((await call(second.query('pools:jobs', {}))) as unknown[]).length, {
        timeout: 10_000,
      })
      .toBe(0);
  });

  it('retries an action whose runner died, once its lease runs out', async () => {
    const place = driver.place();
    const doomed = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 300, exclusive: false, log: () => undefined },
    });
    const [id] = await enqueue(doomed, { pool: 'retrying', label: 'orphan', ms: 800 });
    await expect
      .poll(() => statuses(doomed, 'retrying', [id!]))
      .toEqual([{ state: 'running', previousAttempts: 0 }]);
    // It records its start a moment after it runs: the store must outlive that record.
    await expect.poll(async () => (await events(doomed, 'orphan')).length).toBe(1);
    // Its process "dies": the store goes away under the running action.
    await doomed.store.close();
    // A lease of its own long enough that a loaded machine's pauses never make the rescuer lose
    // the jobs it took back (that would be a second, charged, take-back).
    const rescuer = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 3000, exclusive: false },
    });
    await expect
      .poll(() => result(rescuer, 'retrying', id!), { timeout: 10_000 })
      .toEqual({
        kind: 'success',
        returnValue: 'orphan done',
      });
    expect((await events(rescuer, 'orphan')).length).toBe(2);
  });

  it('charges a job taken back from gone runners a third time, so a poison pill cannot loop forever', async () => {
    const engine = await startApp('pools', driver);
    const [once] = await enqueue(engine, { pool: 'retrying', label: 'lost-once', ms: 1 });
    const [thrice] = await enqueue(engine, { pool: 'retrying', label: 'lost-thrice', ms: 1 });
    // As runners that died left them: claimed, not known to have started, their leases run out;
    // the second was already taken back twice.
    await engine.store.write(async (tx) => {
      for (const [id, takeBacks] of [
        [once!, 0],
        [thrice!, 2],
      ] as const) {
        const job = (await getPoolJob(tx, id))!;
        await saveJob(tx, {
          ...job,
          state: 'running',
          owner: 'pool-runner-gone',
          attempt: job.attempt + 1,
          due: Date.now() - 1,
          takeBacks,
        });
      }
    });
    engine.startJobs({ exclusive: false });
    await expectChargedThird(engine, once!, thrice!);
    expect(await events(engine, 'lost-thrice')).toHaveLength(1);
  });

  it('takes back the jobs a runner that died held without writing them, uncharged if never started', async () => {
    // On a shared store a runner writes one holdings document for the jobs it claimed ahead;
    // they stay pending in the database. A claim counts them, and skips them, until their
    // lease runs out.
    const place = driver.place();
    const doomed = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 300, exclusive: false, log: () => undefined },
    });
    const ids = await enqueue(doomed, { pool: 'retrying', label: 'held', ms: 800, count: 8 });
    // Five run (their starts recorded); three wait in its queue, held.
    await expect
      .poll(async () => (await statuses(doomed, 'retrying', ids)).map((status) => status.state))
      .toEqual(expect.arrayContaining(['running', 'pending']));
    await expect.poll(() => runningCount(doomed, 'retrying', ids)).toBe(5);
    // Each records its start a moment after it runs: the store must outlive those records.
    await expect.poll(async () => (await events(doomed, 'held')).length).toBe(5);
    const holdings = await doomed.store.read(async (tx) =>
      (await tx.scan({ table: POOL_HOLDINGS, index: 'by_pool', order: 'asc', limit: 10 })).map(
        (entry) => entry.document as Holdings,
      ),
    );
    expect(holdings).toHaveLength(1);
    expect(holdings[0]).toMatchObject({ pool: 'retrying' });
    expect(holdings[0]!.jobs).toHaveLength(3);
    const held = new Set(holdings[0]!.jobs);
    await doomed.store.close();
    // A lease of its own long enough that a loaded machine's pauses never make the rescuer lose
    // the jobs it took back (that would be a second, charged, take-back).
    const rescuer = await startApp('pools', driver, {
      store: await place.open(),
      jobs: { leaseMs: 3000, exclusive: false },
    });
    await expect.poll(() => allFinished(rescuer, 'retrying', ids), { timeout: 15_000 }).toBe(true);
    const jobs = (await call(rescuer.query('pools:jobs', {}))) as unknown as PoolJob[];
    for (const job of jobs.filter((candidate) => ids.includes(candidate._id))) {
      expect(job.result).toEqual({ kind: 'success', returnValue: 'held done' });
      if (held.has(job._id)) {
        // Never started: taken back uncharged, run once.
        expect(job).toMatchObject({ attempt: 1, failures: [], takeBacks: 1 });
      } else {
        // Started where it died: that attempt counts, and the retry ran.
        expect(job.attempt).toBe(2);
        expect(job.failures).toHaveLength(1);
      }
    }
    expect(await events(rescuer, 'held')).toHaveLength(5 * 2 + 3);
    const left = await rescuer.store.read((tx) =>
      tx.scan({ table: POOL_HOLDINGS, index: 'by_pool', order: 'asc', limit: 10 }),
    );
    expect(left).toEqual([]);
  });

  it('lets go of held jobs another runner took over while it stalled, and runs them once that one is gone', async () => {
    const logs: string[] = [];
    const engine = await startApp('pools', driver, {
      jobs: { exclusive: false, leaseMs: 300, log: (message) => logs.push(message) },
    });
    const ids = await enqueue(engine, { pool: 'narrow', label: 'stalled', ms: 400, count: 9 });
    await expect.poll(() => runningCount(engine, 'narrow', ids)).toBe(3);
    // As another runner does once this one's lease ran out: takes its holdings and holds the six
    // queued jobs itself (then dies too, so its lease runs out in a second).
    const takenOver = Date.now();
    // (Run again if it races the runner's own renewal of its holdings.)
    const queued = await writeWithRetry(engine.store, async (tx) => {
      const owner = ownerOf(await getPoolJob(tx, ids[0]!));
      const own = (await tx.get(POOL_HOLDINGS, holdingsId('narrow', owner))) as Holdings;
      await tx.delete(POOL_HOLDINGS, own._id);
      await tx.insert(POOL_HOLDINGS, {
        ...own,
        _id: holdingsId('narrow', 'pool-runner-other'),
        owner: 'pool-runner-other',
        due: takenOver + 1000,
      });
      return own.jobs;
    });
    expect(queued).toHaveLength(6);
    // Its upkeep, every third of a lease, runs a cycle, which finds its holdings gone.
    await expect.poll(() => allFinished(engine, 'narrow', ids), { timeout: 10_000 }).toBe(true);
    expect(logs.filter((line) => line.includes('6 held job(s) were taken back'))).toHaveLength(1);
    // None started here while the other runner held it; each ran once, after its lease.
    const starts = await events(engine, 'stalled');
    expect(starts).toHaveLength(9);
    const jobs = (await call(engine.query('pools:jobs', {}))) as unknown as PoolJob[];
    for (const job of jobs.filter((candidate) => queued.includes(candidate._id))) {
      expect(job).toMatchObject({ attempt: 1, failures: [], takeBacks: 1 });
      expect(job.startedAt).toBeGreaterThanOrEqual(takenOver + 1000);
    }
    expect((await mostAtOnce(engine, 'stalled')).most).toBeLessThanOrEqual(3);
  });

  it('holds its jobs again when its holdings went but nobody took them', async () => {
    const logs: string[] = [];
    const engine = await startApp('pools', driver, {
      jobs: { exclusive: false, leaseMs: 300, log: (message) => logs.push(message) },
    });
    const ids = await enqueue(engine, { pool: 'narrow', label: 'kept', ms: 300, count: 9 });
    await expect.poll(() => runningCount(engine, 'narrow', ids)).toBe(3);
    const owner = await engine.store.read(async (tx) => ownerOf(await getPoolJob(tx, ids[0]!)));
    const holdings = async () =>
      (await engine.store.read((tx) =>
        tx.get(POOL_HOLDINGS, holdingsId('narrow', owner)),
      )) as Holdings | null;
    await writeWithRetry(engine.store, async (tx) => {
      await tx.delete(POOL_HOLDINGS, holdingsId('narrow', owner));
    });
    // Listed again by the next cycle (its upkeep runs one every third of a lease).
    await expect.poll(async () => (await holdings())?.jobs.length ?? 0).toBeGreaterThan(0);
    await expect.poll(() => allFinished(engine, 'narrow', ids), { timeout: 10_000 }).toBe(true);
    expect(await events(engine, 'kept')).toHaveLength(9);
    expect(logs.filter((line) => line.includes('taken back'))).toEqual([]);
  });

  it('charges a held job whose runners keep dying a third time, as a claimed one', async () => {
    const engine = await startApp('pools', driver);
    const [once] = await enqueue(engine, { pool: 'retrying', label: 'held-once', ms: 1 });
    const [thrice] = await enqueue(engine, { pool: 'retrying', label: 'held-thrice', ms: 1 });
    // As a runner that died left them: held (pending, listed), its lease run out; the second
    // was already taken back twice.
    await engine.store.write(async (tx) => {
      const job = (await getPoolJob(tx, thrice!))!;
      await saveJob(tx, { ...job, takeBacks: 2 });
      await tx.insert(POOL_HOLDINGS, {
        _id: holdingsId('retrying', 'pool-runner-gone'),
        _creationTime: Date.now(),
        pool: 'retrying',
        owner: 'pool-runner-gone',
        jobs: [once!, thrice!],
        due: Date.now() - 1,
      });
    });
    engine.startJobs({ exclusive: false });
    await expectChargedThird(engine, once!, thrice!);
    expect(await events(engine, 'held-thrice')).toHaveLength(1);
    expect(await events(engine, 'held-once')).toHaveLength(1);
  });

  it('takes back its own running jobs it no longer holds once their lease ran out, and renews those it holds', async () => {
    const engine = await startApp('pools', driver);
    const [held] = await enqueue(engine, { pool: 'narrow', label: 'held', ms: 1 });
    const [lost] = await enqueue(engine, { pool: 'narrow', label: 'lost', ms: 1 });
    const past = Date.now() - 1;
    await engine.store.write(async (tx) => {
      for (const id of [held!, lost!]) {
        const job = (await getPoolJob(tx, id))!;
        await saveJob(tx, { ...job, state: 'running', owner: 'me', attempt: 1, due: past });
      }
    });
    // A runner whose hand-back of `lost` failed: it holds only `held`.
    const holder: LeaseHolder = {
      owner: 'me',
      leaseMs: 10_000,
      holds: (id) => id === held,
      renewing: () => undefined,
    };
    await engine.store.write((tx) => renewAndTakeBack(tx, 'narrow', holder, false, Date.now()));
    const jobs = (await call(engine.query('pools:jobs', {}))) as unknown as PoolJob[];
    const job = (id: string) => jobs.find((candidate) => candidate._id === id);
    expect(job(held!)).toMatchObject({ state: 'running', owner: 'me', attempt: 1 });
    expect(job(held!)!.due).toBeGreaterThan(Date.now());
    expect(job(lost!)).toMatchObject({ state: 'pending', attempt: 0, takeBacks: 1 });
    expect(job(lost!)!.owner).toBeUndefined();
  });

  it.runIf(driver.name === 'postgres')(
    'holds maxParallelism across two runners on one database',
    async () => {
      const place = driver.place();
      const a = await startApp('pools', driver, { store: await place.open() });
      const b = await startApp('pools', driver, { store: await place.open() });
      const ids = await enqueue(a, { pool: 'narrow', label: 'two', ms: 50, count: 30 });
      a.startJobs({ exclusive: false });
      b.startJobs({ exclusive: false });
      await expect.poll(() => allFinished(a, 'narrow', ids), { timeout: 20_000 }).toBe(true);
      // Starts and ends of every attempt, from both processes: never more than 3 between them.
      const { starts, most } = await mostAtOnce(a, 'two');
      expect(starts).toBe(30);
      expect(most).toBeLessThanOrEqual(3);
    },
  );

  it.runIf(driver.name === 'postgres')(
    'hands back, uncharged, a job its enqueue claimed while another runner filled the pool',
    async () => {
      const place = driver.place();
      const a = await startApp('pools', driver, { store: await place.open() });
      const b = await startApp('pools', driver, { store: await place.open() });
      b.startJobs({ exclusive: false });
      const busy = await enqueue(b, { pool: 'narrow', label: 'hold', ms: 600, count: 3 });
      await expect
        .poll(async () => (await statuses(b, 'narrow', busy)).map((status) => status.state))
        .toEqual(['running', 'running', 'running']);
      // Idle as far as runner a knows: its enqueue claims the job, and finds no free slot.
      a.startJobs({ exclusive: false });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [late] = await enqueue(a, { pool: 'narrow', label: 'late', ms: 1 });
      await expect.poll(() => allFinished(a, 'narrow', [...busy, late!])).toBe(true);
      const holds = await events(a, 'hold:peak');
      const [start] = await events(a, 'late');
      // Started only once a slot was free, once, as its first attempt.
      expect(start!.at).toBeGreaterThanOrEqual(Math.min(...holds.map((event) => event.at)));
      expect(await events(a, 'late')).toHaveLength(1);
      const jobs = (await call(a.query('pools:jobs', {}))) as Array<{
        _id: string;
        attempt: number;
      }>;
      expect(jobs.find((job) => job._id === late)?.attempt).toBe(1);
    },
  );

  const two = driver.name === 'postgres' ? ', on two runners' : '';
  it(`holds maxParallelism for jobs enqueued one at a time into an idle pool, all at once${two}`, async () => {
    // Each enqueue may claim its job itself (the pool is idle here): the claims must still add
    // up to at most maxParallelism, and every job run exactly once.
    const place = driver.place();
    const a = await startApp('pools', driver, { store: await place.open() });
    const b = two === '' ? a : await startApp('pools', driver, { store: await place.open() });
    a.startJobs({ exclusive: driver.name === 'sqlite' });
    if (b !== a) b.startJobs({ exclusive: false });
    // One job first, so that both runners know the pool and find it idle.
    const [first] = await enqueue(a, { pool: 'narrow', label: 'first', ms: 1 });
    await expect.poll(() => allFinished(a, 'narrow', [first!])).toBe(true);
    const ids = (
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          enqueue(i % 2 === 0 ? a : b, { pool: 'narrow', label: 'single', ms: 30 }),
        ),
      )
    ).flat();
    await expect.poll(() => allFinished(a, 'narrow', ids), { timeout: 20_000 }).toBe(true);
    const { starts, most } = await mostAtOnce(a, 'single');
    expect(starts).toBe(30);
    expect(most).toBeLessThanOrEqual(3);
    // And one job alone into the idle pool runs at once, with its result.
    const [alone] = await enqueue(a, { pool: 'narrow', label: 'alone', ms: 1 });
    await expect
      .poll(() => result(a, 'narrow', alone!))
      .toEqual({ kind: 'success', returnValue: 'alone done' });
    // One canceled by the mutation that enqueued it never runs, claimed there or not.
    const canceled = (await call(
      a.mutation('pools:enqueueAndCancel', { pool: 'narrow', label: 'never' }),
    )) as string;
    expect(await result(a, 'narrow', canceled)).toEqual({ kind: 'canceled' });
    const [after] = await enqueue(a, { pool: 'narrow', label: 'after', ms: 1 });
    await expect.poll(() => allFinished(a, 'narrow', [after!])).toBe(true);
    expect(await events(a, 'never')).toEqual([]);
  });

  it(`holds maxParallelism while cycles record short jobs' ends and claim more${two}`, async () => {
    // A cycle reads the pool's running jobs before it writes the ends it records (they are
    // still running then): its count must tell them from another runner's.
    const place = driver.place();
    const a = await startApp('pools', driver, { store: await place.open() });
    const b = two === '' ? a : await startApp('pools', driver, { store: await place.open() });
    a.startJobs({ exclusive: driver.name === 'sqlite' });
    if (b !== a) b.startJobs({ exclusive: false });
    // A second wave while the first runs: on two runners, the one that did not claim the first
    // finds the other's jobs running, and may claim only free slots.
    const ids = await enqueue(a, { pool: 'narrow', label: 'short', ms: 5, count: 60 });
    await expect.poll(async () => (await events(a, 'short')).length > 0).toBe(true);
    ids.push(...(await enqueue(b, { pool: 'narrow', label: 'short', ms: 5, count: 60 })));
    await expect.poll(() => allFinished(a, 'narrow', ids), { timeout: 30_000 }).toBe(true);
    const { starts, most } = await mostAtOnce(a, 'short');
    expect(starts).toBe(120);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
  });
});
