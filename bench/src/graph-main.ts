/**
 * `npm run bench:graph`: the job-graph table alone (see graph.ts), on DATABASE_URL or a
 * throwaway PostgreSQL cluster.
 */
import { benchGraph } from './graph.js';
import { printTable } from './measure.js';
import { withBenchSetting } from './setting.js';

await withBenchSetting(async (setting) => {
  printTable(
    'Job graph: 10,000 nodes (root → 9,998 leaves → sink), pool of 10, beside a flat queue',
    await benchGraph(setting),
  );
});
