/**
 * Jobs that depend on jobs, and unique jobs, on both drivers, through @sleigh/workpool inside
 * real functions: diamond and fan-out/fan-in graphs in dependency order with results flowing,
 * failures cascading per policy, cycles refused, re-runs from a node, and unique keys under
 * every policy, also with 50 concurrent enqueuers on two runners sharing a database.
 */
import type { JSONValue } from 'convex/values';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { DRIVERS, startApp } from '../test-harness.js';
import { readHoldings } from './pool-holdings.js';
import { getPoolJob } from './pool-jobs.js';
import { byLabel, call, results, settled, steps, type Result } from './test-calls.js';

describe.each(DRIVERS)('job graphs and unique jobs on $name', (driver) => {
  const stored = (engine: Engine, id: string) => engine.store.read((tx) => getPoolJob(tx, id));

  it('runs a diamond in dependency order, each step reading what its dependencies returned', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = (await call(engine.mutation('graph:diamond', {}))) as Record<string, string>;
    const all = Object.values(ids);
    await expect.poll(() => settled(engine, all), { timeout: 10_000 }).toBe(true);
    const [a, b, c, d] = await results(engine, [ids.a!, ids.b!, ids.c!, ids.d!]);
    expect(a).toEqual({ kind: 'success', returnValue: 'a()' });
    expect(b).toEqual({ kind: 'success', returnValue: 'b(a())' });
    expect(c).toEqual({ kind: 'success', returnValue: 'c(a())' });
    expect(d).toEqual({ kind: 'success', returnValue: 'd(b(a())+c(a()))' });
    const ran = await steps(engine);
    const one = (label: string) => byLabel(ran, label)[0]!;
    // Each started only after everything it depends on had ended.
    expect(one('b').start).toBeGreaterThanOrEqual(one('a').end);
    expect(one('c').start).toBeGreaterThanOrEqual(one('a').end);
    expect(one('d').start).toBeGreaterThanOrEqual(Math.max(one('b').end, one('c').end));
    expect(ran).toHaveLength(4);
  });

  it(`fans out to 30 leaves and back in to one sink${driver.name === 'postgres' ? ', on two runners' : ''}`, async () => {
    const place = driver.place();
    const engine = await startApp('pools', driver, { store: await place.open() });
    engine.startJobs({ exclusive: false });
    // On PostgreSQL a second server shares the work: edges and counts hold across both.
    if (driver.name === 'postgres') {
      const other = await startApp('pools', driver, { store: await place.open() });
      other.startJobs({ exclusive: false });
    }
    const { root, leaves, sink } = (await call(engine.mutation('graph:fan', { width: 30 }))) as {
      root: string;
      leaves: string[];
      sink: string;
    };
    await expect.poll(() => settled(engine, [sink]), { timeout: 15_000 }).toBe(true);
    const [sinkResult] = await results(engine, [sink]);
    expect(sinkResult?.kind).toBe('success');
    // The sink saw every leaf's result, in dependsOn order.
    expect(sinkResult?.returnValue).toBe(
      `sink(${leaves.map((_, i) => `leaf${i}(root())`).join('+')})`,
    );
    const ran = await steps(engine);
    const rootEnd = byLabel(ran, 'root')[0]!.end;
    const leafSteps = ran.filter((step) => step.label.startsWith('leaf'));
    expect(leafSteps).toHaveLength(30);
    expect(leafSteps.every((step) => step.start >= rootEnd)).toBe(true);
    expect(byLabel(ran, 'sink')[0]!.start).toBeGreaterThanOrEqual(
      Math.max(...leafSteps.map((step) => step.end)),
    );
    expect(await settled(engine, [root, ...leaves])).toBe(true);
  });

  it.each([
    ['fail', 'failed'],
    ['cancel', 'canceled'],
  ])(
    'with onDependencyFailure "%s", a failed job ends its subtree (%s), naming why; others run',
    async (policy, kind) => {
      const engine = await startApp('pools', driver, { jobs: {} });
      const ids = (await call(engine.mutation('graph:failing', { policy }))) as Record<
        string,
        string
      >;
      const all = Object.values(ids);
      await expect.poll(() => settled(engine, all), { timeout: 10_000 }).toBe(true);
      const [bad, child, grandchild, sibling] = await results(engine, [
        ids.bad!,
        ids.child!,
        ids.grandchild!,
        ids.sibling!,
      ]);
      expect(bad?.kind).toBe('failed');
      expect(bad?.error).toContain('bad cannot work');
      const why = (result: Result | undefined) => result?.error ?? result?.reason ?? '';
      expect(child?.kind).toBe(kind);
      expect(why(child)).toContain(`dependency "bad" (${ids.bad}) failed`);
      // The grandchild's policy is the default (fail): it names the child.
      expect(grandchild?.kind).toBe('failed');
      expect(why(grandchild)).toContain(`dependency "child" (${ids.child})`);
      expect(sibling).toEqual({ kind: 'success', returnValue: 'sibling()' });
      expect((await steps(engine)).map((step) => step.label).sort()).toEqual(['bad', 'sibling']);
    },
  );

  it('with onDependencyFailure "run", a job runs anyway and sees the failure', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = (await call(engine.mutation('graph:failing', { policy: 'run' }))) as Record<
      string,
      string
    >;
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    const [child, grandchild] = await results(engine, [ids.child!, ids.grandchild!]);
    expect(child).toEqual({ kind: 'success', returnValue: 'child(failed)' });
    expect(grandchild).toEqual({ kind: 'success', returnValue: 'grandchild(child(failed))' });
  });

  it('ends the subtree of a canceled job, naming it', async () => {
    const engine = await startApp('pools', driver);
    const ids = (await call(engine.mutation('graph:diamond', {}))) as Record<string, string>;
    await call(engine.mutation('graph:cancel', { id: ids.a! }));
    const [a, b, c, d] = await results(engine, [ids.a!, ids.b!, ids.c!, ids.d!]);
    expect(a).toEqual({ kind: 'canceled' });
    expect(b).toEqual({ kind: 'failed', error: `dependency "a" (${ids.a}) was canceled` });
    expect(c).toEqual({ kind: 'failed', error: `dependency "a" (${ids.a}) was canceled` });
    expect(d?.kind).toBe('failed');
    expect(d?.error).toMatch(
      new RegExp(`dependency "[bc]" \\((${ids.b}|${ids.c})\\) failed: dependency "a"`),
    );
  });

  it('refuses a cycle, naming it, and writes nothing of the mutation', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const outcome = await engine.mutation('graph:cyclic', {});
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error.message).toMatch(
      /the jobs depend on each other in a cycle: (x → z → y → x|y → x → z → y|z → y → x → z)/,
    );
    expect(await steps(engine)).toEqual([]);
  });

  it('starts a job depending on one that already succeeded at once, and fails one whose dependency failed', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = (await call(engine.mutation('graph:failing', { policy: 'cancel' }))) as Record<
      string,
      string
    >;
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    const late = (await call(
      engine.mutation('graph:dependOn', { id: ids.sibling!, label: 'late' }),
    )) as string;
    const doomed = (await call(
      engine.mutation('graph:dependOn', { id: ids.bad!, label: 'doomed' }),
    )) as string;
    await expect.poll(() => settled(engine, [late, doomed]), { timeout: 10_000 }).toBe(true);
    const [lateResult, doomedResult] = await results(engine, [late, doomed]);
    expect(lateResult).toEqual({ kind: 'success', returnValue: 'late(sibling())' });
    expect(doomedResult?.kind).toBe('failed');
    expect(doomedResult?.error).toContain(`dependency "bad" (${ids.bad}) failed`);
    const bad = await engine.mutation('graph:dependOn', { id: 'nonsense', label: 'x' });
    expect(!bad.ok && bad.error.message).toMatch(
      /dependsOn: "nonsense" is not the id of a pool job/,
    );
  });

  it('re-runs a job and everything downstream of it, and nothing upstream or beside', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const ids = (await call(engine.mutation('graph:diamond', {}))) as Record<string, string>;
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    expect(await call(engine.mutation('graph:rerun', { id: ids.b! }))).toBe(2);
    // Until they run again, their results are gone; their ids stay.
    await expect.poll(() => settled(engine, [ids.b!, ids.d!]), { timeout: 10_000 }).toBe(true);
    const ran = await steps(engine);
    expect(byLabel(ran, 'a')).toHaveLength(1);
    expect(byLabel(ran, 'c')).toHaveLength(1);
    expect(byLabel(ran, 'b')).toHaveLength(2);
    expect(byLabel(ran, 'd')).toHaveLength(2);
    const [secondB, secondD] = [byLabel(ran, 'b')[1]!, byLabel(ran, 'd')[1]!];
    expect(secondD.start).toBeGreaterThanOrEqual(secondB.end);
    expect((await results(engine, [ids.d!]))[0]).toEqual({
      kind: 'success',
      returnValue: 'd(b(a())+c(a()))',
    });
  });

  it('keeps one unfinished job per unique key: skip, replace, and a window', async () => {
    const engine = await startApp('pools', driver);
    const enqueue = async (args: Record<string, JSONValue>) =>
      (await call(engine.mutation('graph:enqueueUnique', args))) as string;
    // Not running yet (no runner): duplicates get the first job's id.
    const first = await enqueue({ key: 'k', label: 'first' });
    expect(await enqueue({ key: 'k', label: 'again' })).toBe(first);
    const other = await enqueue({ key: 'other', label: 'other' });
    expect(other).not.toBe(first);
    // replace: the pending holder is canceled, the new job takes the key.
    const replacing = await enqueue({ key: 'k', label: 'replacing', onDuplicate: 'replace' });
    expect(replacing).not.toBe(first);
    expect((await results(engine, [first], 'unique'))[0]).toEqual({
      kind: 'canceled',
      reason: `replaced by ${replacing} (unique key "k")`,
    });
    engine.startJobs();
    await expect.poll(() => settled(engine, [replacing, other], 'unique')).toBe(true);
    // Once its job finished, the key is free again...
    const later = await enqueue({ key: 'k', label: 'later' });
    expect(later).not.toBe(replacing);
    await expect.poll(() => settled(engine, [later], 'unique')).toBe(true);
    // ...unless a window keeps it: at most one job per window, finished or not.
    const windowed = await enqueue({ key: 'w', label: 'windowed', uniqueForMs: 60_000 });
    await expect.poll(() => settled(engine, [windowed], 'unique')).toBe(true);
    expect(await enqueue({ key: 'w', label: 'too soon', uniqueForMs: 60_000 })).toBe(windowed);
    const labels = (await steps(engine)).map((step) => step.label).sort();
    expect(labels).toEqual(['later', 'other', 'replacing', 'windowed']);
    const bad = await engine.mutation('graph:enqueueUnique', { key: '', label: 'x' });
    expect(!bad.ok && bad.error.message).toMatch(/uniqueKey must be a string of 1 to 256/);
  });

  it('runs a job again only while no other job holds its unique key, and gives it the key back', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    const enqueue = async (args: Record<string, JSONValue>) =>
      (await call(engine.mutation('graph:enqueueUnique', args))) as string;
    const a = await enqueue({ key: 'r', label: 'a', ms: 1500 });
    await expect.poll(() => settled(engine, [a], 'unique'), { timeout: 10_000 }).toBe(true);
    // The key is free once a finished: b takes it, and a may not run beside b.
    const b = await enqueue({ key: 'r', label: 'b', ms: 1500 });
    expect(b).not.toBe(a);
    const refused = await engine.mutation('graph:rerun', { id: a });
    expect(!refused.ok && refused.error.message).toMatch(
      /Workpool rerun: .* has the unique key "r", which .* holds now; wait for it or cancel it first/,
    );
    await expect.poll(() => settled(engine, [b], 'unique'), { timeout: 10_000 }).toBe(true);
    // Once b finished, a runs again and holds the key: a duplicate gets a.
    expect(await call(engine.mutation('graph:rerun', { id: a }))).toBe(1);
    expect(await enqueue({ key: 'r', label: 'c' })).toBe(a);
    await expect.poll(() => settled(engine, [a], 'unique'), { timeout: 10_000 }).toBe(true);
    const ran = (await steps(engine)).map((step) => step.label);
    expect(ran).toEqual(['a', 'b', 'a']);
  });

  it('replaces a unique key whose job is delayed: it has not started either', async () => {
    const engine = await startApp('pools', driver);
    const enqueue = async (args: Record<string, JSONValue>) =>
      (await call(engine.mutation('graph:enqueueUnique', args))) as string;
    const delayed = await enqueue({ key: 'del', label: 'delayed', runAfter: 60_000 });
    expect((await stored(engine, delayed))?.state).toBe('delayed');
    const replacing = await enqueue({ key: 'del', label: 'replacing', onDuplicate: 'replace' });
    expect(replacing).not.toBe(delayed);
    expect((await results(engine, [delayed], 'unique'))[0]).toEqual({
      kind: 'canceled',
      reason: `replaced by ${replacing} (unique key "del")`,
    });
    engine.startJobs();
    await expect.poll(() => settled(engine, [replacing], 'unique')).toBe(true);
    expect((await steps(engine)).map((step) => step.label)).toEqual(['replacing']);
  });

  it.each([
    [['dependent', 'after', 'replacer'], 'cancel', 'canceled'],
    [['dependent', 'replacer', 'after'], 'fail', 'failed'],
    [['replacer', 'dependent', 'after'], 'cancel', 'canceled'],
    [['after', 'replacer', 'dependent'], 'fail', 'failed'],
  ] as const)(
    'cancels a job replaced by a graph that also depends on it (nodes %j), ending its dependents (%s)',
    async (order, policy, kind) => {
      const engine = await startApp('pools', driver);
      const held = (await call(
        engine.mutation('graph:enqueueKeyed', { key: 'g', label: 'A' }),
      )) as string;
      const ids = (await call(
        engine.mutation('graph:dependOnAndReplace', {
          id: held,
          key: 'g',
          policy,
          order: [...order],
        }),
      )) as Record<string, string>;
      const replaced = `replaced by ${ids.replacer} (unique key "g")`;
      const why = `dependency "A" (${held}) was canceled (${replaced})`;
      const [a, dependent, after, replacer] = await results(engine, [
        held,
        ids.dependent!,
        ids.after!,
        ids.replacer!,
      ]);
      expect(a).toEqual({ kind: 'canceled', reason: replaced });
      expect(dependent).toEqual(kind === 'canceled' ? { kind, reason: why } : { kind, error: why });
      expect(after?.kind).toBe('failed');
      expect(after?.error).toContain(`dependency "dependent" (${ids.dependent}) `);
      expect(replacer).toBeNull();
      // The canceled job keeps the dependent this call gave it (re-runs find it).
      expect(await stored(engine, held)).toMatchObject({ state: 'finished', dependents: 1 });
      engine.startJobs();
      await expect.poll(() => settled(engine, [ids.replacer!])).toBe(true);
      expect((await steps(engine)).map((step) => step.label)).toEqual(['replacer']);
    },
  );

  it('cancels a job replaced by a later node of its own graph, telling its dependent once', async () => {
    const engine = await startApp('pools', driver);
    const ids = (await call(engine.mutation('graph:replaceWithinGraph', {}))) as Record<
      string,
      string
    >;
    expect((await results(engine, [ids.first!]))[0]).toEqual({
      kind: 'canceled',
      reason: `replaced by ${ids.second} (unique key "own")`,
    });
    // It runs anyway, once the dependency still unmet has succeeded.
    expect(await stored(engine, ids.child!)).toMatchObject({
      state: 'waiting',
      unmetDependencies: 1,
    });
    engine.startJobs();
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    expect((await results(engine, [ids.child!]))[0]).toEqual({
      kind: 'success',
      returnValue: 'child(canceled+other())',
    });
    const ran = await steps(engine);
    expect(ran.map((step) => step.label).sort()).toEqual(['child', 'other', 'second']);
    expect(byLabel(ran, 'child')[0]!.start).toBeGreaterThanOrEqual(byLabel(ran, 'other')[0]!.end);
  });

  it('runs a job claimed ahead that gains a dependent while it waits for a slot, and the dependent', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    // Four slow steps fill the pool of four; the fifth is claimed ahead and waits in the queue.
    const ids = (await call(
      engine.mutation('graph:enqueueSteps', {
        labels: ['slow0', 'slow1', 'slow2', 'slow3', 'queued'],
        ms: 400,
      }),
    )) as string[];
    // The runner claims within milliseconds; the slow steps hold their slots for 400 ms.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await steps(engine)).toEqual([]);
    const child = (await call(
      engine.mutation('graph:dependOn', { id: ids[4]!, label: 'child' }),
    )) as string;
    // Well before any lease (30 s) could run out: the write to the queued job did not strand it.
    await expect.poll(() => settled(engine, [...ids, child]), { timeout: 5000 }).toBe(true);
    const [queued, childResult] = await results(engine, [ids[4]!, child]);
    expect(queued).toEqual({ kind: 'success', returnValue: 'queued()' });
    expect(childResult).toEqual({ kind: 'success', returnValue: 'child(queued())' });
    expect(byLabel(await steps(engine), 'queued')).toHaveLength(1);
  });

  it('runs a job and the child one mutation enqueued after it, into an idle pool, at once', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    // The runner knows the pool, and it is idle: the first job may be claimed by the mutation.
    const [warm] = (await call(
      engine.mutation('graph:enqueueSteps', { labels: ['warm'], ms: 1 }),
    )) as string[];
    await expect.poll(() => settled(engine, [warm!])).toBe(true);
    const [parent, child] = (await call(engine.mutation('graph:parentAndChild', {}))) as string[];
    // Well before a lease (30 s) could run out, though the child's link rewrote the parent.
    await expect.poll(() => settled(engine, [parent!, child!]), { timeout: 5000 }).toBe(true);
    expect((await results(engine, [child!]))[0]).toEqual({
      kind: 'success',
      returnValue: 'child(parent())',
    });
  });

  it('never cancels a job that started when its unique key is replaced, even before its start is recorded', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    for (let round = 0; round < 5; round++) {
      const first = (await call(
        engine.mutation('graph:enqueueSelfReplacing', { key: `r${round}`, label: `first${round}` }),
      )) as string;
      await expect.poll(() => settled(engine, [first], 'unique')).toBe(true);
      const [result] = await results(engine, [first], 'unique');
      expect(result?.kind).toBe('success');
      const replacement = result?.returnValue as string;
      expect(replacement).not.toBe(first);
      await expect.poll(() => settled(engine, [replacement], 'unique')).toBe(true);
      expect((await results(engine, [replacement], 'unique'))[0]?.kind).toBe('success');
    }
    const labels = (await steps(engine)).map((step) => step.label);
    expect(labels.filter((label) => label.startsWith('first'))).toHaveLength(10);
  });

  it.runIf(driver.name === 'postgres')(
    'keeps a job another runner holds when its unique key is replaced from elsewhere: it may have started',
    async () => {
      const place = driver.place();
      // A server without a runner enqueues; the runner's process claims.
      const elsewhere = await startApp('pools', driver, { store: await place.open() });
      const enqueue = async (args: Record<string, JSONValue>) =>
        (await call(elsewhere.mutation('graph:enqueueUnique', args))) as string;
      const blockers = [
        await enqueue({ key: 'b1', label: 'b1', ms: 600 }),
        await enqueue({ key: 'b2', label: 'b2', ms: 600 }),
      ];
      const held = await enqueue({ key: 'h', label: 'held', ms: 5 });
      const runner = await startApp('pools', driver, { store: await place.open(), jobs: {} });
      // Claimed with the blockers, it waits for a slot: pending in the database, but held.
      await expect
        .poll(
          () =>
            runner.store.read(async (tx) =>
              (await readHoldings(tx, 'unique')).some((holdings) => holdings.jobs.includes(held)),
            ),
          { timeout: 5_000 },
        )
        .toBe(true);
      const replacement = await enqueue({ key: 'h', label: 'replacement', onDuplicate: 'replace' });
      expect(replacement).not.toBe(held);
      await expect
        .poll(() => settled(runner, [...blockers, held, replacement], 'unique'), {
          timeout: 10_000,
        })
        .toBe(true);
      expect((await results(runner, [held], 'unique'))[0]?.kind).toBe('success');
      const labels = (await steps(runner)).map((step) => step.label).sort();
      expect(labels).toEqual(['b1', 'b2', 'held', 'replacement']);
    },
  );

  it('keeps jobs that failed for good as dead letters, and retries them with what depends on them', async () => {
    const engine = await startApp('pools', driver, { jobs: {} });
    await call(engine.mutation('graph:setSwitch', { name: 'broken', on: true }));
    const ids = (await call(engine.mutation('graph:failingChain', { switch: 'broken' }))) as Record<
      string,
      string
    >;
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    type Failed = { id: string; name: string; error: string; attempts: number };
    const failed = (await call(engine.query('graph:failedJobs', {}))) as unknown as Failed[];
    expect(failed.map((job) => job.name).sort()).toEqual(['bad', 'child', 'grandchild']);
    expect(failed.find((job) => job.name === 'bad')?.error).toContain('failed while broken was on');
    // The same list reaches operators through the engine (the HTTP API and CLI use it).
    expect((await engine.failedPoolJobs('graph')).map((job) => job.id).sort()).toEqual(
      failed.map((job) => job.id).sort(),
    );
    // A dead letter downstream of another is retried with that one, not alone.
    const alone = await engine.mutation('graph:retryFailed', { ids: [ids.child!] });
    expect(!alone.ok && alone.error.message).toMatch(
      /Workpool retryFailed: "child" \(.+\) depends on "bad" \(.+\), which did not succeed; retry or rerun that one/,
    );
    // Fixed: retrying every dead letter re-runs the root, and with it its subtree, once.
    await call(engine.mutation('graph:setSwitch', { name: 'broken', on: false }));
    expect(await call(engine.mutation('graph:retryFailed', {}))).toBe(3);
    await expect.poll(() => settled(engine, Object.values(ids)), { timeout: 10_000 }).toBe(true);
    expect((await results(engine, [ids.grandchild!]))[0]).toEqual({
      kind: 'success',
      returnValue: 'grandchild(child(bad()))',
    });
    expect(await call(engine.query('graph:failedJobs', {}))).toEqual([]);
    const ran = (await steps(engine)).map((step) => step.label).sort();
    expect(ran).toEqual(['bad', 'bad', 'child', 'grandchild']);
    const done = await engine.mutation('graph:retryFailed', { ids: [ids.grandchild!] });
    expect(!done.ok && done.error.message).toMatch(/"grandchild" \(.+\) is finished, not failed/);
    const bad = await engine.mutation('graph:retryFailed', { ids: ['nope'] });
    expect(!bad.ok && bad.error.message).toMatch(/ids must be a list of pool job ids/);
  });

  it('sweeps dead letters after their own retention, keeping results for theirs', async () => {
    const engine = await startApp('pools', driver, { jobs: { leaseMs: 300 } });
    const [doomed, fine] = (await call(engine.mutation('graph:failAndSucceed', {}))) as string[];
    await expect.poll(() => settled(engine, [doomed!, fine!], 'shortLived')).toBe(true);
    expect(await call(engine.query('graph:shortLivedFailures', {}))).toEqual([doomed]);
    // failedTtl 300 ms: the upkeep's indexed sweep deletes it; the result (ttl 60 s) stays.
    await expect
      .poll(() => call(engine.query('graph:shortLivedFailures', {})), { timeout: 5000 })
      .toEqual([]);
    const [gone, kept] = await results(engine, [doomed!, fine!], 'shortLived');
    expect(gone).toEqual({ kind: 'failed', error: 'the job is unknown, or its result expired' });
    expect(kept).toEqual({ kind: 'success', returnValue: 'fine()' });
  });

  // Two runners share a database only on PostgreSQL (a SQLite file belongs to one process).
  const sharing = driver.name === 'postgres' ? ' on two runners sharing the database' : '';
  it(`holds a unique key under 50 concurrent enqueuers${sharing}`, async () => {
    const place = driver.place();
    const a = await startApp('pools', driver, { store: await place.open() });
    const b = sharing === '' ? a : await startApp('pools', driver, { store: await place.open() });
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call(
          (i % 2 === 0 ? a : b).mutation('graph:enqueueUnique', {
            key: 'contended',
            label: `racer${i}`,
            ms: 50,
          }),
        ),
      ),
    );
    expect(new Set(ids).size).toBe(1);
    a.startJobs({ exclusive: false });
    if (b !== a) b.startJobs({ exclusive: false });
    await expect
      .poll(() => settled(a, [ids[0] as string], 'unique'), { timeout: 10_000 })
      .toBe(true);
    expect(await steps(a)).toHaveLength(1);
  });
});
