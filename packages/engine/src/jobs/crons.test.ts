/**
 * Crons on both drivers: schedules in UTC, the `_cron_jobs` table, runs that happen once per
 * tick across restarts and runners, the catch-up policy for missed ticks, and bad crons.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { DRIVERS, startApp, timerOverflows } from '../test-harness.js';
import { call } from './test-calls.js';
import { nextRunAfter } from './crons.js';

const runs = async (engine: Engine, label: string): Promise<number[]> =>
  ((await call(engine.query('scheduling:runs', { label }))) as Array<{ at: number }>).map(
    (run) => run.at,
  );

const cronsFile = (body: string): string =>
  `import { cronJobs } from 'convex/server';\nimport { internal } from './_generated/api';\nconst crons = cronJobs();\n${body}\nexport default crons;\n`;

function writeCrons(engine: Engine, body: string): void {
  writeFileSync(join(engine.functionsDir, 'crons.ts'), cronsFile(body));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('cron schedules (UTC)', () => {
  const at = (iso: string) => Date.parse(iso);
  it('computes the next tick of each kind of schedule', () => {
    const now = at('2026-03-10T10:17:30Z'); // a Tuesday
    const next = (schedule: Parameters<typeof nextRunAfter>[0]) =>
      new Date(nextRunAfter(schedule, now)).toISOString();
    expect(next({ type: 'interval', seconds: 90 })).toBe('2026-03-10T10:19:00.000Z');
    expect(next({ type: 'interval', hours: 2 })).toBe('2026-03-10T12:17:30.000Z');
    expect(next({ type: 'hourly', minuteUTC: 5 })).toBe('2026-03-10T11:05:00.000Z');
    expect(next({ type: 'daily', hourUTC: 9, minuteUTC: 0 })).toBe('2026-03-11T09:00:00.000Z');
    expect(next({ type: 'weekly', dayOfWeek: 'monday', hourUTC: 8 })).toBe(
      '2026-03-16T08:00:00.000Z',
    );
    expect(next({ type: 'monthly', day: 1, hourUTC: 0, minuteUTC: 30 })).toBe(
      '2026-04-01T00:30:00.000Z',
    );
    expect(next({ type: 'cron', cron: '*/15 * * * *' })).toBe('2026-03-10T10:30:00.000Z');
    // A tick exactly now is not "after now".
    expect(nextRunAfter({ type: 'cron', cron: '30 10 * * *' }, at('2026-03-10T10:30:00Z'))).toBe(
      at('2026-03-11T10:30:00Z'),
    );
  });
});

describe.each(DRIVERS)('crons on $name', (driver) => {
  it('runs an interval cron every tick and shows its last and next run', async () => {
    const engine = await startApp('jobs', driver, { copy: true, jobs: {} });
    writeCrons(
      engine,
      "crons.interval('tick', { seconds: 1 }, internal.scheduling.record, { label: 'tick' });",
    );
    const loadedAt = Date.now();
    await engine.reload();
    const [cron] = (await call(engine.query('scheduling:crons', {}))) as Array<{
      name: string;
      function: string;
      nextRun: number;
      lastRun?: number;
    }>;
    expect(cron).toMatchObject({ name: 'tick', function: 'scheduling:record' });
    expect(cron!.lastRun).toBeUndefined();
    expect(cron!.nextRun).toBeGreaterThanOrEqual(loadedAt + 1000);
    await expect.poll(() => runs(engine, 'tick'), { timeout: 10_000 }).toHaveLength(2);
    const [first, second] = await runs(engine, 'tick');
    expect(first).toBeGreaterThanOrEqual(cron!.nextRun);
    expect(second! - first!).toBeGreaterThanOrEqual(950);
    const [after] = (await call(engine.query('scheduling:crons', {}))) as Array<{
      nextRun: number;
      lastRun: number;
    }>;
    expect(after!.lastRun).toBeGreaterThanOrEqual(first!);
    expect(after!.nextRun).toBeGreaterThan(after!.lastRun);
  });

  it('skips a tick while the previous run has not finished, as Convex does', async () => {
    const logged: string[] = [];
    const engine = await startApp('jobs', driver, {
      copy: true,
      jobs: { log: (message) => logged.push(message) },
    });
    // Every second, a run that takes 2.5 s.
    writeCrons(
      engine,
      "crons.interval('slow', { seconds: 1 }, internal.scheduling.work, { label: 'slow', ms: 2500 });",
    );
    await engine.reload();
    await sleep(6000);
    const runs = (
      (await call(engine.query('scheduling:scheduled', {}))) as Array<{
        name: string;
        scheduledTime: number;
        completedTime?: number;
      }>
    ).filter((run) => run.name === 'scheduling:work');
    // Each run started after the one before it ended: never two at once.
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(runs.length).toBeLessThanOrEqual(3);
    for (const [i, run] of runs.entries()) {
      if (i === 0) continue;
      expect(run.scheduledTime).toBeGreaterThanOrEqual(runs[i - 1]!.completedTime!);
    }
    expect(logged.some((line) => /cron "slow": skipped the run due at/.test(line))).toBe(true);
    const [cron] = (await call(engine.query('scheduling:crons', {}))) as Array<{
      lastSkipped?: number;
    }>;
    expect(cron!.lastSkipped).toBeGreaterThan(0);
  });

  it('keeps a cron on reload, drops a removed one, and refuses bad crons with clear errors', async () => {
    const engine = await startApp('jobs', driver, { copy: true });
    writeCrons(
      engine,
      "crons.daily('nightly', { hourUTC: 3, minuteUTC: 0 }, internal.scheduling.record, { label: 'n' });",
    );
    await engine.reload();
    const before = (await call(engine.query('scheduling:crons', {}))) as Array<{
      _id: string;
      nextRun: number;
    }>;
    await engine.reload();
    expect(await call(engine.query('scheduling:crons', {}))).toEqual(before);

    writeCrons(
      engine,
      "crons.hourly('q', { minuteUTC: 1 }, internal.scheduling.count, { label: 'x' });",
    );
    await expect(engine.reload()).rejects.toThrow(
      /cron "q" runs scheduling:count, which is a query/,
    );
    writeCrons(
      engine,
      "crons.cron('bad', '61 * * * *', internal.scheduling.record, { label: 'b' });",
    );
    await expect(engine.reload()).rejects.toThrow(
      /cron "bad" has an invalid schedule "61 \* \* \* \*"/,
    );
    writeCrons(
      engine,
      "crons.interval('typo', { seconds: 2 }, internal.scheduling.record, { label: 5 });",
    );
    await expect(engine.reload()).rejects.toThrow(
      'crons.ts: cron "typo": Invalid arguments for scheduling:record: `label`: expected string, got float64 5',
    );
    // An interval longer than a run may be scheduled ahead would never run.
    writeCrons(
      engine,
      "crons.interval('ages', { hours: 1e9 }, internal.scheduling.record, { label: 'a' });",
    );
    await expect(engine.reload()).rejects.toThrow(
      'crons.ts: cron "ages" must run at least once every 5 years (the scheduling limit)',
    );
    // The failed loads changed nothing.
    expect(await call(engine.query('scheduling:crons', {}))).toEqual(before);

    writeCrons(engine, '');
    await engine.reload();
    expect(await call(engine.query('scheduling:crons', {}))).toEqual([]);
  });

  it('updates a cron whose arguments changed, int64 and bytes among them', async () => {
    const engine = await startApp('jobs', driver, { copy: true });
    const argsOf = async () =>
      ((await call(engine.query('scheduling:crons', {}))) as Array<{ args: unknown }>)[0]!.args;
    const load = async (args: string) => {
      writeCrons(
        engine,
        `crons.daily('d', { hourUTC: 3 }, internal.scheduling.anything, ${args});`,
      );
      await engine.reload();
    };
    await load("{ label: 'a' }");
    expect(await argsOf()).toEqual({ label: 'a' });
    await load("{ label: 'b' }");
    expect(await argsOf()).toEqual({ label: 'b' });
    // int64 arguments are stored, and a reload with them unchanged keeps the cron as it is.
    await load("{ label: 'b', n: 1n }");
    const stored = await call(engine.query('scheduling:crons', {}));
    await engine.reload();
    expect(await call(engine.query('scheduling:crons', {}))).toEqual(stored);
    expect(await argsOf()).toEqual({ label: 'b', n: 1n });
    await load("{ label: 'b', bytes: new Uint8Array([1, 2, 3]).buffer }");
    await load("{ label: 'b', bytes: new Uint8Array([9, 9, 9, 9]).buffer }");
    const { bytes } = (await argsOf()) as { bytes: ArrayBuffer };
    expect([...new Uint8Array(bytes)]).toEqual([9, 9, 9, 9]);
  });

  it('waits quietly for a tick beyond what a Node timer can wait', async () => {
    const overflows = timerOverflows();
    const engine = await startApp('jobs', driver, { copy: true, jobs: {} });
    writeCrons(
      engine,
      "crons.interval('monthly', { hours: 720 }, internal.scheduling.record, { label: 'm' });",
    );
    await engine.reload();
    await sleep(300);
    expect(overflows()).toBe(0);
    expect(await runs(engine, 'm')).toEqual([]);
  });

  it('refuses a cron expression without exactly five fields, which the parser would misread', async () => {
    const engine = await startApp('jobs', driver, { copy: true });
    for (const expression of ['0 9 * *', '', '*/10 * * * * *', '5']) {
      writeCrons(
        engine,
        `crons.cron('e', ${JSON.stringify(expression)}, internal.scheduling.record, { label: 'e' });`,
      );
      await expect(engine.reload(), expression).rejects.toThrow(
        `cron "e" has an invalid schedule ${JSON.stringify(expression)}: a cron expression has five fields`,
      );
    }
    expect(await call(engine.query('scheduling:crons', {}))).toEqual([]);
  });

  it('changes nothing, schema included, when crons.ts refuses a load', async () => {
    const engine = await startApp('jobs', driver, { copy: true });
    // New code that drops an index the running code reads through, with a cron that is wrong.
    const schema = join(engine.functionsDir, 'schema.ts');
    writeFileSync(
      schema,
      readFileSync(schema, 'utf8').replace(".index(\n    'by_label',\n    ['label'],\n  )", ''),
    );
    expect(readFileSync(schema, 'utf8')).not.toContain('by_label');
    writeCrons(engine, "crons.hourly('c', { minuteUTC: 0 }, internal.scheduling.nope, {});");
    await expect(engine.reload()).rejects.toThrow(
      /cron "c" runs scheduling:nope, which is not a function/,
    );
    expect(await call(engine.query('scheduling:runs', { label: 'x' }))).toEqual([]);
  });

  it('runs a missed cron once when the server is back, then on its schedule', async () => {
    const place = driver.place();
    const files = {
      'crons.ts': cronsFile(
        "crons.interval('catch-up', { seconds: 1 }, internal.scheduling.record, { label: 'missed' });",
      ),
    };
    const first = await startApp('jobs', driver, { files, store: await place.open() });
    // Stopped (no runner) over three ticks.
    await sleep(3500);
    await first.store.close();
    const restartedAt = Date.now();
    const second = await startApp('jobs', driver, { files, store: await place.open(), jobs: {} });
    await expect.poll(() => runs(second, 'missed'), { timeout: 5000 }).toHaveLength(1);
    const [catchUp] = await runs(second, 'missed');
    expect(catchUp! - restartedAt).toBeLessThan(900);
    await expect.poll(() => runs(second, 'missed'), { timeout: 5000 }).toHaveLength(2);
    const [, next] = await runs(second, 'missed');
    // Not a second catch-up (that would come at once) but the next tick, a second after the
    // catch-up was due; it may have run late under load, so the gap can be a little under 1 s.
    expect(next! - catchUp!).toBeGreaterThanOrEqual(500);
    await sleep(300);
    expect(await runs(second, 'missed')).toHaveLength(2);
  });

  it.runIf(driver.name === 'postgres')(
    'runs each tick once when two servers share the database',
    async () => {
      const place = driver.place();
      // Both start with the cron: servers sharing a store must have the same crons.
      const files = {
        'crons.ts': cronsFile(
          "crons.interval('shared', { seconds: 1 }, internal.scheduling.record, { label: 's' });",
        ),
      };
      const a = await startApp('jobs', driver, { files, store: await place.open() });
      const b = await startApp('jobs', driver, { files, store: await place.open() });
      a.startJobs({ exclusive: false });
      b.startJobs({ exclusive: false });
      await sleep(4200);
      const times = await runs(a, 's');
      expect(times.length).toBeGreaterThanOrEqual(3);
      expect(times.length).toBeLessThanOrEqual(5);
      for (let i = 1; i < times.length; i++) {
        expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
      }
    },
  );
});
