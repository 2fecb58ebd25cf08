/**
 * `npm run bench:jobs`: the job table alone (see jobs.ts), on DATABASE_URL or a throwaway
 * PostgreSQL cluster.
 */
import { benchJobs } from './jobs.js';
import { printTable } from './measure.js';
import { withBenchSetting } from './setting.js';

await withBenchSetting(async (setting) => {
  printTable(
    'Jobs: 20,000 no-op jobs, concurrency 10, batched enqueue; latency on an idle pool',
    await benchJobs(setting),
  );
});
