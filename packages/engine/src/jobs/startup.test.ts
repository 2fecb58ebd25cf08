/**
 * Startup jobs on both drivers: a graph declared in code (`pool.startupJobs`) is enqueued once
 * per deploy — not again when the same code restarts, nor by a second server starting it
 * together (PostgreSQL), and again when the code changes.
 */
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.js';
import { DRIVERS, startApp } from '../test-harness.js';
import { call } from './test-calls.js';

const boots = async (engine: Engine) => (await call(engine.query('startup:boots', {}))) as string[];

describe.each(DRIVERS)('startup jobs on $name', (driver) => {
  it('enqueues the declared graph once per deploy, in dependency order', async () => {
    const place = driver.place();
    const first = await startApp('startup', driver, { store: await place.open() });
    // A second server with the same code (PostgreSQL only: a SQLite file has one process).
    if (driver.name === 'postgres')
      await startApp('startup', driver, { store: await place.open() });
    first.startJobs({ exclusive: false });
    await expect.poll(() => boots(first), { timeout: 10_000 }).toEqual(['fetch', 'process']);
    await first.stopJobs(1000);

    // The same code starting again finds its startup jobs already done.
    const again = await startApp('startup', driver, { store: await place.open(), jobs: {} });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await boots(again)).toEqual(['fetch', 'process']);
    await again.stopJobs(1000);

    // New code is a new deploy: its startup jobs run once more.
    const changed = await startApp('startup', driver, {
      store: await place.open(),
      files: { 'extra.ts': 'export const version = 2;\n' },
      jobs: {},
    });
    await expect
      .poll(() => boots(changed), { timeout: 10_000 })
      .toEqual(['fetch', 'process', 'fetch', 'process']);
  });
});
