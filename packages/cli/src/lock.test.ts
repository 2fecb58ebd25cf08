/**
 * The data directory lock: exclusive within this process and across processes, released by the
 * kernel when its holder dies, and not fooled by the files a dead holder leaves behind. Other
 * processes import the built lock (dist/lock.js), so run `npx tsc -b` first.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CliError, type Locations } from './context.js';
import { lockDataDir } from './lock.js';
import { project, sleigh } from './test-processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const BUILT_LOCK = join(here, '..', 'dist', 'lock.js');

/**
 * A process that takes the lock on LOCK_TEST_DIR (at once, or when it reads a line if
 * LOCK_TEST_GATE is set), prints "won <pid>" or "lost <message>", and holds what it won until
 * its stdin closes.
 */
const CHILD = `
import { createInterface } from 'node:readline';
import { lockDataDir } from ${JSON.stringify(pathToFileURL(BUILT_LOCK).href)};
const dataDir = process.env.LOCK_TEST_DIR;
const where = { functionsDir: dataDir, dataDir, db: null, schema: 'sleigh' };
const take = () => {
  try {
    const release = lockDataDir(where, 'testing');
    console.log('won ' + process.pid);
    return release;
  } catch (error) {
    console.log('lost ' + error.name + ': ' + error.message);
    return null;
  }
};
const lines = createInterface({ input: process.stdin });
let release = null;
if (process.env.LOCK_TEST_GATE) {
  lines.once('line', () => (release = take()));
  console.log('ready');
} else {
  release = take();
}
lines.on('close', () => {
  release?.();
  process.exit(0);
});
`;

interface Child {
  readonly pid: number;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  send(line: string): void;
  /** Closes stdin (a winner releases and exits) or kills; resolves on exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function lockingChild(dataDir: string, gate = false): Child {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, LOCK_TEST_DIR: dataDir, ...(gate ? { LOCK_TEST_GATE: '1' } : {}) },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async (signal?: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      if (signal === undefined) child.stdin.end();
      else child.kill(signal);
    }
    await exited;
  };
  onTestFinished(() => stop('SIGKILL'));
  return {
    pid: child.pid!,
    output: () => output,
    waitFor: async (pattern, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = output.match(pattern);
        if (match !== null) return match;
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`Expected ${pattern} from the locking child; got:\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    send: (line) => child.stdin.write(`${line}\n`),
    stop,
  };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sleigh-lock-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sqliteAt(dataDir: string): Locations {
  return { functionsDir: join(dataDir, 'convex'), dataDir, db: null, schema: 'sleigh' };
}

/** The CliError that `take` throws. */
function refusal(take: () => unknown): CliError {
  try {
    take();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  }
  throw new Error('Expected the lock to be refused');
}

const pidFile = (dataDir: string) => join(dataDir, 'server.pid');
const readPid = (dataDir: string) => readFileSync(pidFile(dataDir), 'utf8').trim();

beforeAll(() => {
  if (!existsSync(BUILT_LOCK)) throw new Error(`${BUILT_LOCK} is missing: run \`npx tsc -b\``);
});

describe('lockDataDir', () => {
  it('refuses a second lock in the same process until the first is released', () => {
    const where = sqliteAt(join(tempDir(), 'data'));
    const release = lockDataDir(where, 'starting a server');
    expect(readPid(where.dataDir)).toBe(String(process.pid));

    expect(refusal(() => lockDataDir(where, 'importing')).message).toBe(
      `Another Sleigh process (pid ${process.pid}) is using ${where.dataDir}; stop it before importing, or use another --data-dir`,
    );
    // The refused attempt leaves the holder's pid file alone.
    expect(readPid(where.dataDir)).toBe(String(process.pid));

    release();
    expect(existsSync(pidFile(where.dataDir))).toBe(false);
    release(); // idempotent
    const again = lockDataDir(where, 'importing');
    expect(readPid(where.dataDir)).toBe(String(process.pid));
    again();
    expect(existsSync(pidFile(where.dataDir))).toBe(false);
  });

  it('is not weakened by a refused attempt in the holding process', async () => {
    const where = sqliteAt(tempDir());
    const release = lockDataDir(where, 'starting a server');
    onTestFinished(release);
    // The refused connection closes its descriptor of server.lock: with POSIX locks that would
    // drop this process's lock, unless SQLite keeps the descriptor open while the lock is held.
    refusal(() => lockDataDir(where, 'importing'));
    refusal(() => lockDataDir(where, 'importing'));
    const other = lockingChild(where.dataDir);
    expect((await other.waitFor(/^lost .*$/m))[0]).toBe(
      `lost CliError: Another Sleigh process (pid ${process.pid}) is using ${where.dataDir}; stop it before testing, or use another --data-dir`,
    );
  });

  it('is refused while another process holds it, and free as soon as that process is killed', async () => {
    const where = sqliteAt(tempDir());
    const holder = lockingChild(where.dataDir);
    await holder.waitFor(/^won \d+$/m);
    expect(readPid(where.dataDir)).toBe(String(holder.pid));

    expect(refusal(() => lockDataDir(where, 'starting a server')).message).toBe(
      `Another Sleigh process (pid ${holder.pid}) is using ${where.dataDir}; stop it before starting a server, or use another --data-dir`,
    );
    expect(readPid(where.dataDir)).toBe(String(holder.pid));

    await holder.stop('SIGKILL');
    // What the dead holder left behind does not matter.
    expect(readPid(where.dataDir)).toBe(String(holder.pid));
    expect(existsSync(join(where.dataDir, 'server.lock'))).toBe(true);
    const release = lockDataDir(where, 'starting a server');
    expect(readPid(where.dataDir)).toBe(String(process.pid));
    release();
    expect(existsSync(pidFile(where.dataDir))).toBe(false);
  });

  it('says who holds it only when the pid file says so', async () => {
    const where = sqliteAt(tempDir());
    const holder = lockingChild(where.dataDir);
    await holder.waitFor(/^won \d+$/m);
    for (const content of [null, '', 'garbage\n', '-1\n']) {
      if (content === null) rmSync(pidFile(where.dataDir));
      else writeFileSync(pidFile(where.dataDir), content);
      expect(refusal(() => lockDataDir(where, 'importing')).message).toBe(
        `Another Sleigh process is using ${where.dataDir}; stop it before importing, or use another --data-dir`,
      );
    }
  });

  it('is not blocked by a stale server.pid naming a live, unrelated process', () => {
    const where = sqliteAt(tempDir());
    for (const pid of [process.ppid, 1]) {
      writeFileSync(pidFile(where.dataDir), `${pid}\n`);
      const release = lockDataDir(where, 'starting a server');
      expect(readPid(where.dataDir)).toBe(String(process.pid));
      release();
      expect(existsSync(pidFile(where.dataDir))).toBe(false);
    }
  });

  it('explains a data directory that cannot be one, without a stack trace', async () => {
    const dir = tempDir();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a folder');
    expect(refusal(() => lockDataDir(sqliteAt(file), 'starting a server')).message).toBe(
      `Cannot use ${file} as the data directory: it is a file, not a folder; use another --data-dir`,
    );
    const below = join(file, 'data');
    expect(refusal(() => lockDataDir(sqliteAt(below), 'starting a server')).message).toBe(
      `Cannot use ${below} as the data directory: a part of its path is a file, not a folder; use another --data-dir`,
    );

    const app = project();
    const serving = await sleigh(['serve', 'convex', '--port', '0', '--data-dir', file], app);
    await serving.waitFor(/Cannot use/);
    expect(await serving.stop()).toBe(1);
    expect(serving.output()).toContain(
      `sleigh: Cannot use ${file} as the data directory: it is a file, not a folder; use another --data-dir\n`,
    );
    expect(serving.output()).not.toMatch(/^\s+at /m);
  });

  it('does nothing for PostgreSQL', () => {
    const dataDir = join(tempDir(), 'never-created');
    const release = lockDataDir(
      { ...sqliteAt(dataDir), db: 'postgres://localhost:5432/sleigh' },
      'starting a server',
    );
    release();
    expect(existsSync(dataDir)).toBe(false);
  });

  it('has exactly one winner among processes that try at the same moment', async () => {
    for (let round = 0; round < 3; round++) {
      const where = sqliteAt(join(tempDir(), 'data'));
      const children = Array.from({ length: 8 }, () => lockingChild(where.dataDir, true));
      await Promise.all(children.map((child) => child.waitFor(/^ready$/m)));
      for (const child of children) child.send('go');
      const results = await Promise.all(
        children.map(async (child) => (await child.waitFor(/^(won|lost) .*$/m))[0]),
      );
      const winners = children.filter((_, i) => results[i]!.startsWith('won '));
      expect(winners, results.join('\n')).toHaveLength(1);
      const winner = winners[0]!;
      expect(readPid(where.dataDir)).toBe(String(winner.pid));
      for (const result of results) {
        if (result.startsWith('won ')) continue;
        // A loser that looked before the winner wrote its pid file names nobody.
        expect(result).toMatch(
          new RegExp(
            `^lost CliError: Another Sleigh process( \\(pid ${winner.pid}\\))? is using .+; stop it before testing`,
          ),
        );
      }
      // The winner keeps the lock while the losers exit, then releases it on stdin's end.
      await Promise.all(children.filter((child) => child !== winner).map((child) => child.stop()));
      expect(refusal(() => lockDataDir(where, 'testing')).message).toContain(`pid ${winner.pid}`);
      await winner.stop();
      expect(existsSync(pidFile(where.dataDir))).toBe(false);
      lockDataDir(where, 'testing')();
    }
  });
});
