/**
 * `node bench/dist/job-system-main.js <system>`: one row of the job table (jobs.ts), run alone
 * in this process so that its peak memory is its own. `npm run bench:jobs` starts one of these
 * per row, with DATABASE_URL set; the figures come back as one line of stdout (FIGURES_LINE).
 * BENCH_JOBS overrides the 20,000 jobs.
 */
import { benchQueueSystem, FIGURES_LINE, isQueueSystem, QUEUE_SYSTEMS } from './jobs.js';
import { withBenchSetting } from './setting.js';

const system = process.argv[2] ?? '';
if (!isQueueSystem(system)) {
  throw new Error(`expected one of ${QUEUE_SYSTEMS.join(', ')}; got "${system}"`);
}
const jobs = Number(process.env.BENCH_JOBS ?? 20_000);
if (!Number.isInteger(jobs) || jobs <= 0) {
  throw new Error(`BENCH_JOBS must be a positive integer, got "${process.env.BENCH_JOBS}"`);
}

await withBenchSetting(async (setting) => {
  const figures = await benchQueueSystem(system, setting, jobs);
  // maxRSS is in KiB: the most this process held in memory at any moment.
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${FIGURES_LINE}${JSON.stringify({ ...figures, peakRssMb })}\n`);
});
