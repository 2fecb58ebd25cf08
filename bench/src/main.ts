/**
 * `npm run bench`: every benchmark, side by side with its baseline, in one run.
 *
 * PostgreSQL: DATABASE_URL when set, otherwise a throwaway cluster from the system's binaries
 * (started with fsync off, which flatters the write figures of both sides alike).
 * BENCH_MS sets the measuring time per figure (default 2000 ms).
 */
import { printTable } from './measure.js';
import { benchEngine } from './engine.js';
import { printFleet } from './fleet.js';
import { benchGraph } from './graph.js';
import { benchJobs } from './jobs.js';
import { benchSanta } from './santa.js';
import { benchServer } from './server.js';
import { withBenchSetting } from './setting.js';
import { benchStorage } from './storage.js';

await withBenchSetting(async ({ tmp, postgresUrl }) => {
  printTable(
    'Storage layer vs raw driver (ratio = sleigh / raw; aim ≥ 0.5)',
    await benchStorage({ tmp, postgresUrl }),
  );
  printTable(
    'Functions vs storage layer, in process (ratio = function / storage)',
    await benchEngine({ tmp, postgresUrl }),
  );
  printTable(
    'Server over WebSocket, official clients (aim: fan-out p99 < 100 ms)',
    await benchServer({ tmp, postgresUrl }),
  );
  printTable(
    'Jobs: 20,000 no-op jobs, concurrency 10, batched enqueue; latency on an idle pool',
    await benchJobs({ tmp, postgresUrl }),
  );
  printTable(
    'Santa workshop at zero delay, 20 actor processes (checker green)',
    await benchSanta({ tmp, postgresUrl }),
  );
  printTable(
    'Job graph: 10,000 nodes (root → 9,998 leaves → sink), pool of 10, beside a flat queue',
    await benchGraph({ tmp, postgresUrl }),
  );
  await printFleet({ tmp, postgresUrl });
});
