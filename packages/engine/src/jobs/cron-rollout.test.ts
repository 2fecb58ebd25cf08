/**
 * A deploy that changes the crons, rolled out server by server on one PostgreSQL: the new
 * server starts beside the old one, the old crons stay in force (their runs going to a server
 * that has the function as they declared it, whoever ticks), and the new crons take effect once
 * the old servers are gone; an old server started again later writes nothing back.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DRIVERS, startApp } from '../test-harness.js';
import { call } from './test-calls.js';

const postgres = DRIVERS.find((driver) => driver.name === 'postgres')!;
const APP = join(fileURLToPath(import.meta.url), '../../../../testing/apps/jobs/convex');
const scheduling = readFileSync(join(APP, 'scheduling.ts'), 'utf8');

const cronsFile = (body: string): string =>
  `import { cronJobs } from 'convex/server';\nimport { internal } from './_generated/api';\nconst crons = cronJobs();\n${body}\nexport default crons;\n`;

/** The old version: a cron every second, recording runs labelled "old". */
const oldVersion = {
  'crons.ts': cronsFile(
    "crons.interval('old', { seconds: 1 }, internal.scheduling.record, { label: 'old' });",
  ),
};

/**
 * The new version: `scheduling:record` takes a second, required argument, and the cron is
 * replaced by one that passes it. The old cron's runs fail on this version's validator.
 */
const changedRecord = scheduling.replace(
  `export const record = internalMutation({
  args: { label: v.string() },`,
  `export const record = internalMutation({
  args: { label: v.string(), note: v.string() },`,
);
const newVersion = {
  'scheduling.ts': changedRecord,
  'crons.ts': cronsFile(
    "crons.interval('new', { seconds: 1 }, internal.scheduling.record, { label: 'new', note: 'n' });",
  ),
};

type Engine = Awaited<ReturnType<typeof startApp>>;
const cronNames = async (engine: Engine) =>
  ((await call(engine.query('scheduling:crons', {}))) as Array<{ name: string }>).map(
    (cron) => cron.name,
  );
const runs = async (engine: Engine, label: string) =>
  ((await call(engine.query('scheduling:runs', { label }))) as unknown[]).length;
const failed = async (engine: Engine) =>
  (
    (await call(engine.query('scheduling:scheduled', {}))) as Array<{
      state: { kind: string; error?: string };
    }>
  ).filter((job) => job.state.kind === 'failed');

describe('a deploy that changes the crons, rolled out beside the old servers', () => {
  it('keeps the old crons in force until the old servers are gone, then the new ones', async () => {
    expect(changedRecord).toContain('note: v.string()');
    const place = postgres.place();
    // The old server runs scheduled functions but ticks no crons: every tick is the new one's.
    const old = await startApp('jobs', postgres, {
      files: oldVersion,
      store: await place.open(),
      jobs: { crons: false },
    });
    expect(await cronNames(old)).toEqual(['old']);
    const fresh = await startApp('jobs', postgres, {
      files: newVersion,
      store: await place.open(),
      jobs: {},
    });
    // The new server started, and left the old crons in force.
    expect(await cronNames(fresh)).toEqual(['old']);
    // It ticks the old cron; each run goes to the old server, which has `record` as the cron
    // declared it: none fails on the new validator.
    await expect.poll(() => runs(fresh, 'old'), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(await runs(fresh, 'new')).toBe(0);
    expect(await failed(fresh)).toEqual([]);
    // Another old server (a restart during the rollout) changes nothing.
    const restarted = await startApp('jobs', postgres, {
      files: oldVersion,
      store: await place.open(),
      jobs: { crons: false },
    });
    expect(await cronNames(fresh)).toEqual(['old']);
    // The signature the cron's runs carry is Sleigh's own: user code never sees it.
    const [cron] = (await call(fresh.query('scheduling:crons', {}))) as Array<
      Record<string, unknown>
    >;
    expect(cron).not.toHaveProperty('sig');

    // The old servers go: the new crons take effect, and run on the new version.
    await old.stopJobs(0);
    await old.store.close();
    await restarted.stopJobs(0);
    await restarted.store.close();
    await expect.poll(() => cronNames(fresh), { timeout: 15_000 }).toEqual(['new']);
    await expect.poll(() => runs(fresh, 'new'), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    const oldRuns = await runs(fresh, 'old');
    expect(await failed(fresh)).toEqual([]);

    // An old server started again beside the new one (a rollback) writes nothing back while
    // the new one runs.
    const rollback = await startApp('jobs', postgres, {
      files: oldVersion,
      store: await place.open(),
      jobs: { crons: false },
    });
    expect(await cronNames(rollback)).toEqual(['new']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await runs(fresh, 'old')).toBe(oldRuns);
    expect(await failed(fresh)).toEqual([]);
  });
});
