/**
 * `npm run bench:fleet`: the fleet tables alone (see fleet.ts), on DATABASE_URL or a throwaway
 * PostgreSQL cluster.
 */
import { printFleet } from './fleet.js';
import { withBenchSetting } from './setting.js';

await withBenchSetting(printFleet);
