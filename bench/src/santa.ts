/**
 * The Santa workshop at zero delay: group cycles per second with Santa and 19 workers in their
 * own processes, on each driver. It runs the example's own command (`examples/santa`), so the
 * figure is what `npm run santa -- --zero-delay` shows, and the checker must hold for it to count.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './measure.js';

const REPO = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const RUN = join(REPO, 'examples', 'santa', 'src', 'run.ts');

function workshop(args: string[]): Promise<{ groups: number; perSecond: number }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', RUN, '--zero-delay', '--no-page', ...args],
      {
        cwd: join(REPO, 'examples', 'santa'),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const match = output.match(/(\d+) groups in [\d.]+ s: ([\d.]+) groups\/s/);
      if (code !== 0 || match === null || !output.includes('all rules hold')) {
        reject(new Error(`The Santa workshop failed (exit ${code}):\n${output}`));
      } else {
        resolvePromise({ groups: Number(match[1]), perSecond: Number(match[2]) });
      }
    });
  });
}

export async function benchSanta(options: { tmp: string; postgresUrl: string }): Promise<Row[]> {
  const cycles = String(Math.max(200, Math.round(Number(process.env.BENCH_MS ?? 2000) / 2)));
  const common = ['--cycles', cycles, '--port', '0'];
  const sqlite = await workshop([...common, '--data-dir', join(options.tmp, 'santa-sqlite')]);
  const postgres = await workshop([
    ...common,
    '--data-dir',
    join(options.tmp, 'santa-postgres'),
    '--db',
    options.postgresUrl,
    '--schema',
    `santa_bench_${process.pid}`,
  ]);
  const twoServers = await workshop([
    ...common,
    '--data-dir',
    join(options.tmp, 'santa-postgres-2'),
    '--db',
    options.postgresUrl,
    '--schema',
    `santa_bench2_${process.pid}`,
    '--servers',
    '2',
  ]);
  return [
    { driver: 'sqlite', groups: sqlite.groups, 'groups/s': sqlite.perSecond, 'vs sqlite': 1 },
    {
      driver: 'postgres',
      groups: postgres.groups,
      'groups/s': postgres.perSecond,
      'vs sqlite': postgres.perSecond / sqlite.perSecond,
    },
    {
      driver: 'postgres, 2 servers',
      groups: twoServers.groups,
      'groups/s': twoServers.perSecond,
      'vs sqlite': twoServers.perSecond / sqlite.perSecond,
    },
  ];
}
