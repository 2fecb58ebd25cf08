/**
 * A throwaway PostgreSQL cluster for tests and benchmarks, from the system's own binaries.
 *
 * `initdb` refuses to run as root, so as root the cluster is created and run as the `postgres`
 * user (present wherever Debian's postgresql package is installed) or `nobody`. The cluster lives
 * in a temporary folder, listens on a free port on 127.0.0.1 with trust authentication, and is
 * removed by `stop()`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface PostgresCluster {
  readonly url: string;
  readonly dataDir: string;
  readonly port: number;
  /** Stops the server (fast shutdown) and keeps the data. */
  pause(): void;
  /** Starts the server again after `pause()`. */
  resume(): void;
  /** Stops the server and deletes the cluster. */
  stop(): void;
}

function findBinDir(): string | null {
  const candidates: string[] = [];
  const pgConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (pgConfig.status === 0) candidates.push(pgConfig.stdout.trim());
  const debianRoot = '/usr/lib/postgresql';
  if (existsSync(debianRoot)) {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) candidates.push(join(debianRoot, version, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir) candidates.push(dir);
  return (
    candidates.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) ??
    null
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

function runAsUser(): { user: string; uid: number; gid: number } | null {
  if (userInfo().uid !== 0) return null;
  for (const user of ['postgres', 'nobody']) {
    const result = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    if (result.status !== 0) continue;
    const uid = Number(result.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim());
    return { user, uid, gid };
  }
  throw new Error(
    'Running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL',
  );
}

export async function startPostgresCluster(): Promise<PostgresCluster> {
  const binDir = findBinDir();
  if (binDir === null) {
    throw new Error(
      'PostgreSQL binaries (initdb, pg_ctl) were not found. Install PostgreSQL (Debian: apt-get install postgresql) or set DATABASE_URL to a server the tests may use.',
    );
  }
  const owner = runAsUser();
  const dir = mkdtempSync(join(tmpdir(), 'sleigh-pg-'));
  const dataDir = join(dir, 'data');
  if (owner !== null) chownSync(dir, owner.uid, owner.gid);
  const port = await freePort();
  const run = (binary: string, args: string[]): void => {
    const command = owner === null ? join(binDir, binary) : 'runuser';
    const fullArgs =
      owner === null ? args : ['-u', owner.user, '--', join(binDir, binary), ...args];
    execFileSync(command, fullArgs, { stdio: 'pipe', cwd: dir });
  };
  run('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    // A test cluster: durability across an OS crash is not needed, speed is.
    '-c fsync=off',
    '-c full_page_writes=off',
    '-c max_connections=300',
    '-c shared_buffers=128MB',
  ].join(' ');
  const start = (): void =>
    run('pg_ctl', ['start', '-w', '-D', dataDir, '-l', join(dir, 'server.log'), '-o', options]);
  start();
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    port,
    pause: () => run('pg_ctl', ['stop', '-w', '-m', 'fast', '-D', dataDir]),
    resume: start,
    stop: () => {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['stop', '-w', '-m', 'immediate', '-D', dataDir]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
