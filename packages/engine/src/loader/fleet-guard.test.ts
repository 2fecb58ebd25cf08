/**
 * Servers sharing a PostgreSQL store must agree on schema, crons and functions: one whose code
 * differs otherwise refuses to start while another runs, and may once it is gone; a change
 * inside function bodies deploys server by server.
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

/** A new function: the deployment's shape changes. */
const extra = `import { query } from './_generated/server';
export const ping = query({ args: {}, handler: async () => 'pong' });
`;

describe('servers of different code on one database', () => {
  it('refuses a server whose functions differ while another runs, and starts it once that one is gone', async () => {
    const place = postgres.place();
    const first = await startApp('jobs', postgres, { store: await place.open() });
    const changed = startApp('jobs', postgres, {
      files: { 'extra.ts': extra },
      store: await place.open(),
    });
    await expect(changed).rejects.toThrow(
      /Other servers on this database run a different schema, crons or set of functions \(pid \d+ on .+, started .+, code [0-9a-f]{16}\): stop them before starting this one/,
    );
    // The refused server changed nothing: the running one still serves.
    expect(await call(first.query('scheduling:count', { label: 'x' }))).toBe(0);
    await first.store.close();
    const next = await startApp('jobs', postgres, {
      files: { 'extra.ts': extra },
      store: await place.open(),
    });
    expect(await call(next.query('extra:ping', {}))).toBe('pong');
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
