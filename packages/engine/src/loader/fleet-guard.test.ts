/**
 * Servers sharing a PostgreSQL store must agree on what they share: one whose code changes or
 * drops what another's schema has (a table's validator, an index) refuses to start while that
 * one runs, and may once it is gone. Functions and crons may differ in any way (added, removed,
 * given other arguments), and tables and indexes may be added: such deploys roll out server by
 * server (what each version then leaves to the other: jobs/fleet-view.test.ts; whose crons are
 * in force: jobs/cron-rollout.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DRIVERS, startApp } from '../test-harness.js';
import { call } from '../jobs/test-calls.js';

const postgres = DRIVERS.find((driver) => driver.name === 'postgres')!;
const APP = join(fileURLToPath(import.meta.url), '../../../../testing/apps/jobs/convex');
const scheduling = readFileSync(join(APP, 'scheduling.ts'), 'utf8');

/** A new function: the deployment's shape changes, and the old servers' is kept. */
const extra = `import { query } from './_generated/server';
export const ping = query({ args: {}, handler: async () => 'pong' });
`;

/** An existing function's arguments changed: what old servers and clients call differs. */
const changedArgs = scheduling.replace(
  `export const count = query({
  args: { label: v.string() },`,
  `export const count = query({
  args: { label: v.string(), since: v.optional(v.number()) },`,
);

/** A function renamed (the old name removed). */
const renamed = scheduling.replace('export const runs = query(', 'export const runs2 = query(');

/** A cron the old servers do not have. */
const crons = `import { cronJobs } from 'convex/server';
import { internal } from './_generated/api';
const crons = cronJobs();
crons.interval('tick', { hours: 1 }, internal.scheduling.anything, {});
export default crons;
`;
const cronNames = async (engine: Awaited<ReturnType<typeof startApp>>) =>
  ((await call(engine.query('scheduling:crons', {}))) as Array<{ name: string }>).map(
    (cron) => cron.name,
  );

const schema = readFileSync(join(APP, 'schema.ts'), 'utf8');
/** A table's validator changed: the old servers write documents the new one refuses. */
const changedTable = schema.replace('attempt: v.optional(v.number())', 'attempt: v.number()');
/** An index added: an old server starting would drop it. */
const addedIndex = schema.replace(
  ".index('by_name', ['name'])",
  ".index('by_name', ['name']).index('by_value', ['value'])",
);

const refusal =
  /Other servers on this database run a schema that this server's code does not keep unchanged \(pid \d+ on .+, started .+, code [0-9a-f]{16}\): stop them before starting this one/;

describe('servers of different code on one database', () => {
  it('refuses a server that changes a table while another runs, and starts it once that one is gone', async () => {
    expect(changedTable).not.toBe(schema);
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    await expect(
      startApp('jobs', postgres, {
        files: { 'schema.ts': changedTable, 'crons.ts': crons },
        store: await place.open(),
      }),
    ).rejects.toThrow(refusal);
    // The refused server changed nothing: not the crons, and the running one still serves.
    expect(await cronNames(first)).toEqual([]);
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    await first.store.close();
    const next = await startApp('jobs', postgres, {
      files: { 'schema.ts': changedTable, 'crons.ts': crons },
      store: await place.open(),
    });
    expect(await cronNames(next)).toEqual(['tick']);
  });

  it('starts a server whose crons differ beside the others, leaving theirs in force', async () => {
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    const second = await startApp('jobs', postgres, {
      files: { 'crons.ts': crons },
      store: await place.open(),
    });
    expect(await cronNames(second)).toEqual([]);
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
  });

  it('starts servers whose functions differ beside each other, either way round', async () => {
    expect(changedArgs).not.toBe(scheduling);
    expect(renamed).not.toBe(scheduling);
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    // A function added, one renamed, one given another argument.
    const changed = await startApp('jobs', postgres, {
      files: {
        'extra.ts': extra,
        'scheduling.ts': changedArgs.replace(
          'export const runs = query(',
          'export const runs2 = query(',
        ),
      },
      store: await place.open(),
    });
    expect(await call(changed.query('extra:ping', {}))).toBe('pong');
    expect(await call(changed.query('scheduling:count', { label: 'x', since: 0 }))).toBe(0);
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    // An old server (a restart that missed the deploy) may join them: the schema is the same.
    const old = await startApp('jobs', postgres, { store: await place.open() });
    expect(await call(old.query('scheduling:runs', { label: 'x' }))).toEqual([]);
  });

  it('starts a server that adds an index beside the old one, and refuses the old one back', async () => {
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    const added = await startApp('jobs', postgres, {
      files: { 'schema.ts': addedIndex },
      store: await place.open(),
    });
    expect(added.store.catalog().index('counters', 'by_value')).toBeDefined();
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    // An old server lacks the index: starting, it would drop it.
    await expect(startApp('jobs', postgres, { store: await place.open() })).rejects.toThrow(
      refusal,
    );
  });

  it('starts a server whose code differs only inside function bodies beside the others', async () => {
    const place = postgres.place();
    await startApp('jobs', postgres, { store: await place.open() });
    const body = scheduling.replace('failed`)', 'failed (new wording)`)');
    expect(body).not.toBe(scheduling);
    const patched = await startApp('jobs', postgres, {
      files: { 'scheduling.ts': body },
      store: await place.open(),
    });
    expect(await call(patched.query('scheduling:count', { label: 'x' }))).toBe(0);
  });
});
