/**
 * `npm run workpool`: starts a Sleigh server on this example's functions, signs up users,
 * downloads the weather and counts, prints the jobs' progress live, then a summary; exits 1 if
 * an email was lost or the counter is off.
 *
 *   --users <n>       users to sign up (default 20; the last one's address bounces)
 *   --cities <n>      cities to scrape (default 8)
 *   --increments <n>  counter increments (default 50)
 *   --db <url>        PostgreSQL instead of SQLite     --schema <name>   its schema (default workpool)
 *   --data-dir <dir>  where SQLite keeps the data (default examples/workpool/.sleigh)
 *   --port <n>        Sleigh's port (default: any free port)
 */
import { parseArgs } from 'node:util';
import { describe, runExample } from './example.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string' },
    cities: { type: 'string' },
    increments: { type: 'string' },
    db: { type: 'string' },
    schema: { type: 'string' },
    'data-dir': { type: 'string' },
    port: { type: 'string' },
  },
});

const number = (name: 'users' | 'cities' | 'increments' | 'port'): { [key: string]: number } => {
  const value = values[name];
  if (value === undefined) return {};
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0`);
  return { [name]: n };
};

// The live line: rewritten in place on a terminal; elsewhere (a log, a pipe) one line at a time,
// at most one every 100 ms, and always the last one.
const tty = process.stdout.isTTY;
let latest: string | null = null;
let printed: string | null = null;
let lastPrint = 0;
let timer: NodeJS.Timeout | null = null;
const flush = () => {
  timer = null;
  if (latest === null || latest === printed) return;
  printed = latest;
  lastPrint = performance.now();
  if (tty) process.stdout.write(`\r\x1b[K${latest}`);
  else console.log(latest);
};
const onProgress = (line: string) => {
  latest = line;
  const wait = 100 - (performance.now() - lastPrint);
  if (tty || wait <= 0) flush();
  else timer ??= setTimeout(flush, wait);
};

try {
  const summary = await runExample({
    ...number('users'),
    ...number('cities'),
    ...number('increments'),
    ...number('port'),
    ...(values.db === undefined ? {} : { db: values.db }),
    ...(values.schema === undefined ? {} : { schema: values.schema }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    onProgress,
    onServerError: (text) => process.stderr.write(text),
    log: (line) => {
      // On a terminal, the log line goes above the live line.
      if (tty && printed !== null) process.stdout.write('\r\x1b[K');
      console.log(line);
      if (tty && printed !== null) process.stdout.write(printed);
    },
  });
  if (timer !== null) clearTimeout(timer);
  flush();
  if (tty) process.stdout.write('\n');
  console.log(describe(summary));
  process.exitCode = summary.ok ? 0 : 1;
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
