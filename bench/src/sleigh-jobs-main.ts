/**
 * `node bench/dist/sleigh-jobs-main.js [sqlite|postgres] [ttl0]`: Sleigh's rows of the job
 * table alone, with the same settings as bench:jobs, for working on them (`ttl0`: the pool that
 * keeps no results). With PROFILE=<file>, the
 * throughput phase's CPU profile is written there (open it in Chrome's DevTools); with
 * ALLOCATIONS=<file>, its sampled allocations (a .heapprofile).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { benchSleighQueue, sleighRowName } from './jobs.js';
import { withBenchSetting } from './setting.js';

const here = dirname(fileURLToPath(import.meta.url));
const driver = process.argv[2] ?? 'sqlite';
if (driver !== 'sqlite' && driver !== 'postgres') {
  throw new Error(`expected "sqlite" or "postgres", got "${driver}"`);
}
const pool = process.argv[3] === 'ttl0' ? 'forgetful' : 'bench';
const profileTo = process.env.PROFILE;
const allocationsTo = process.env.ALLOCATIONS;
const session = new Session();

const around =
  profileTo !== undefined
    ? {
        async start() {
          session.connect();
          await session.post('Profiler.enable');
          await session.post('Profiler.start');
        },
        async stop() {
          const { profile } = await session.post('Profiler.stop');
          writeFileSync(profileTo, JSON.stringify(profile));
          session.disconnect();
        },
      }
    : allocationsTo !== undefined
      ? {
          // Sampled allocations (what garbage collection has to clean up), by call stack.
          async start() {
            session.connect();
            await session.post('HeapProfiler.enable');
            await session.post('HeapProfiler.startSampling', {
              samplingInterval: 4096,
              includeObjectsCollectedByMajorGC: true,
              includeObjectsCollectedByMinorGC: true,
            });
          },
          async stop() {
            const { profile } = await session.post('HeapProfiler.stopSampling');
            writeFileSync(allocationsTo, JSON.stringify(profile));
            session.disconnect();
          },
        }
      : undefined;

await withBenchSetting(async ({ tmp, postgresUrl }) => {
  const buildRoot = join(here, '..', '.build', randomBytes(4).toString('hex'));
  mkdirSync(buildRoot, { recursive: true });
  const settings = {
    jobs: 20_000,
    batch: 1000,
    samples: 200,
    pool,
    ...(around ? { around } : {}),
  } as const;
  const schema = `bench_jobs_${randomBytes(4).toString('hex')}`;
  try {
    const store: Store =
      driver === 'sqlite'
        ? await openSqliteStore({ path: join(tmp, 'jobs.sqlite') })
        : await openPostgresStore({ connectionString: postgresUrl, schema });
    const name = sleighRowName(driver, pool);
    console.log(await benchSleighQueue(name, store, join(buildRoot, driver), settings));
    await store.close();
    if (driver === 'postgres') await PostgresStore.dropSchema(postgresUrl, schema);
  } finally {
    rmSync(buildRoot, { recursive: true, force: true });
  }
});
