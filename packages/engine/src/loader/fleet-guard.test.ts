/**
 * Servers sharing a PostgreSQL store must agree on what they share: one whose code changes or
 * drops what another has (a function's validators, a cron) refuses to start while that one
 * runs, and may once it is gone; a change inside function bodies, or one that only adds, deploys
 * server by server (what the old servers then leave to the new: jobs/fleet-view.test.ts).
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

/** A cron the old servers do not have. */
const crons = `import { cronJobs } from 'convex/server';
import { internal } from './_generated/api';
const crons = cronJobs();
crons.interval('tick', { hours: 1 }, internal.scheduling.anything, {});
export default crons;
`;

const refusal =
  /Other servers on this database run a schema, crons or functions that this server's code does not keep unchanged \(pid \d+ on .+, started .+, code [0-9a-f]{16}\): stop them before starting this one/;

describe('servers of different code on one database', () => {
  it('refuses a server that changes a function or the crons while another runs, and starts it once that one is gone', async () => {
    expect(changedArgs).not.toBe(scheduling);
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    await expect(
      startApp('jobs', postgres, {
        files: { 'scheduling.ts': changedArgs },
        store: await place.open(),
      }),
    ).rejects.toThrow(refusal);
    await expect(
      startApp('jobs', postgres, { files: { 'crons.ts': crons }, store: await place.open() }),
    ).rejects.toThrow(refusal);
    // The refused servers changed nothing: the running one still serves.
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    await first.store.close();
    const next = await startApp('jobs', postgres, {
      files: { 'scheduling.ts': changedArgs },
      store: await place.open(),
    });
    expect(await call(next.query('scheduling:count', { label: 'x', since: 0 }))).toBe(0);
  });

  it('starts a server that only adds beside the old one, and refuses the old one back', async () => {
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    const added = await startApp('jobs', postgres, {
      files: { 'extra.ts': extra },
      store: await place.open(),
    });
    expect(await call(added.query('extra:ping', {}))).toBe('pong');
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    // An old server (a restart that missed the deploy) lacks what the new one has.
    await expect(startApp('jobs', postgres, { store: await place.open() })).rejects.toThrow(
      refusal,
    );
    // Nor may a server drop what a running one has, however much it adds.
    await first.store.close();
    const renamed = scheduling.replace('export const runs = query(', 'export const runs2 = query(');
    expect(renamed).not.toBe(scheduling);
    await expect(
      startApp('jobs', postgres, {
        files: { 'extra.ts': extra, 'scheduling.ts': renamed },
        store: await place.open(),
      }),
    ).rejects.toThrow(refusal);
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
