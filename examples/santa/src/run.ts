/**
 * `npm run santa`: the whole workshop in one command, on the embedded SQLite by default.
 *
 *   --duration <s>   stop after this many seconds (default: run until Ctrl-C)
 *   --cycles <n>     stop after this many groups
 *   --reindeer <n>   (default 9)        --elves <n>   (default 10)
 *   --zero-delay     no work or vacation time: as fast as the server goes
 *   --db <url>       PostgreSQL instead of SQLite     --schema <name>   its schema (default santa)
 *   --servers <n>    Sleigh servers on that database (default 1); the actors are spread over them
 *   --port <n>       Sleigh's port (default 3210)
 *   --page-port <n>  the North Pole page's port (default 3211)    --no-page   no page at all
 *   --data-dir <dir> where SQLite keeps the data and the page is built (default examples/santa/.sleigh)
 */
import { parseArgs } from 'node:util';
import { describe } from './check.js';
import { startWorkshop } from './workshop.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    cycles: { type: 'string' },
    reindeer: { type: 'string' },
    elves: { type: 'string' },
    'zero-delay': { type: 'boolean' },
    db: { type: 'string' },
    servers: { type: 'string' },
    schema: { type: 'string' },
    port: { type: 'string' },
    'page-port': { type: 'string' },
    'no-page': { type: 'boolean' },
    'data-dir': { type: 'string' },
  },
});

const number = (value: string | undefined, name: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
  return n;
};

const workshop = await startWorkshop({
  ...(values.duration === undefined
    ? {}
    : { durationSeconds: number(values.duration, 'duration')! }),
  ...(values.cycles === undefined ? {} : { cycles: number(values.cycles, 'cycles')! }),
  ...(values.reindeer === undefined ? {} : { reindeer: number(values.reindeer, 'reindeer')! }),
  ...(values.elves === undefined ? {} : { elves: number(values.elves, 'elves')! }),
  zeroDelay: values['zero-delay'] === true,
  ...(values.db === undefined ? {} : { db: values.db }),
  ...(values.servers === undefined ? {} : { servers: number(values.servers, 'servers')! }),
  ...(values.schema === undefined ? {} : { schema: values.schema }),
  ...(values.port === undefined ? {} : { port: number(values.port, 'port')! }),
  ...(values['page-port'] === undefined
    ? {}
    : { pagePort: number(values['page-port'], 'page-port')! }),
  ...(values['no-page'] === true ? { pagePort: null } : {}),
  ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
});
process.once('SIGINT', () => {
  console.log('\nStopping: Santa finishes the group at work first');
  workshop.stop();
});
const { report, cyclesPerSecond, seconds } = await workshop.finished;
console.log(describe(report));
console.log(
  `${report.cycles} groups in ${seconds.toFixed(1)} s: ${cyclesPerSecond.toFixed(1)} groups/s`,
);
process.exitCode = report.ok ? 0 : 1;
