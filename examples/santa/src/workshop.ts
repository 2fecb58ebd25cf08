/**
 * The whole workshop: a Sleigh server (its own process), the North Pole page (built with Vite,
 * served by a small static server), Santa and every reindeer and elf (one process each), and,
 * when it stops, the checker over the whole history.
 *
 *   server ─▶ page ─▶ workers (all registered) ─▶ Santa ─▶ … ─▶ Santa stops after a release
 *          ─▶ workers stop ─▶ history checked ─▶ everything shut down
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvexHttpClient } from 'convex/browser';
import type { FunctionReference } from 'convex/server';
import { internal } from '../convex/_generated/api.js';
import { check, readHistory, type Report } from './check.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLE = resolve(here, '..');
const REPO = resolve(EXAMPLE, '..', '..');
const FUNCTIONS = join(EXAMPLE, 'convex');
const SLEIGH = join(REPO, 'packages', 'cli', 'bin', 'sleigh.js');

export interface WorkshopOptions {
  readonly reindeer?: number;
  readonly elves?: number;
  /** No sleeping at all: actors go as fast as the server lets them. */
  readonly zeroDelay?: boolean;
  /** Stop after this many groups (Santa finishes and releases the last one). */
  readonly cycles?: number;
  /** Stop after this many seconds. */
  readonly durationSeconds?: number;
  /** PostgreSQL instead of the embedded SQLite. */
  readonly db?: string;
  /**
   * How many Sleigh servers share the database (PostgreSQL only, default 1): the actors are
   * spread over them, so they coordinate across servers.
   */
  readonly servers?: number;
  readonly schema?: string;
  readonly dataDir?: string;
  readonly port?: number;
  /** Serve the North Pole page on this port (0: any free port; null: no page). */
  readonly pagePort?: number | null;
  readonly log?: (line: string) => void;
}

export interface Workshop {
  /** The (first) Sleigh server's URL. */
  readonly url: string;
  /** Every Sleigh server's URL. */
  readonly urls: readonly string[];
  /** The North Pole page's URL, when served. */
  readonly pageUrl: string | null;
  readonly adminKey: string;
  /** Resolves when the run has stopped (cycles, duration, or `stop()`), with the checker's report. */
  readonly finished: Promise<{ report: Report; cyclesPerSecond: number; seconds: number }>;
  stop(): void;
}

function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(pattern);
      if (match !== null) {
        child.stdout?.off('data', onData);
        resolve(match);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) =>
      reject(new Error(`${what} exited (${code}) before it was ready:\n${output}`)),
    );
  });
}

/** Builds the page with Vite when its sources are newer than the last build. */
async function buildPage(outDir: string): Promise<void> {
  const source = join(here, 'page');
  const newest = (dir: string): number =>
    Math.max(...readdirSync(dir).map((name) => statSync(join(dir, name)).mtimeMs));
  const built = join(outDir, 'index.html');
  if (
    existsSync(built) &&
    statSync(built).mtimeMs > Math.max(newest(source), newest(join(FUNCTIONS, '_generated')))
  )
    return;
  const { build } = await import('vite');
  // React and the Convex client make one ~600 kB chunk: fine for a demo page, so no warning.
  await build({
    root: source,
    base: './',
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

function servePage(dir: string, port: number, sleighUrl: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/config.json') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ url: sleighUrl }));
      return;
    }
    const file = resolve(dir, `.${path === '/' ? '/index.html' : path}`);
    if (relative(dir, file).startsWith('..') || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404);
      res.end('Not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolvePromise(server));
  });
}

function actor(script: string, args: string[]): ChildProcess {
  return fork(join(here, 'actors', script), args, {
    execArgv: ['--import', 'tsx'],
    // Its own process group, so Ctrl-C reaches only the workshop, which stops Santa after a
    // release and then everyone else in order.
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startWorkshop(options: WorkshopOptions = {}): Promise<Workshop> {
  const log = options.log ?? ((line: string) => console.log(line));
  const reindeer = options.reindeer ?? 9;
  const elves = options.elves ?? 10;
  const dataDir = options.dataDir ?? join(EXAMPLE, '.sleigh');
  mkdirSync(dataDir, { recursive: true });

  const serverCount = options.servers ?? 1;
  if (!Number.isInteger(serverCount) || serverCount < 1) {
    throw new Error(`servers must be a positive whole number, got ${serverCount}`);
  }
  if (serverCount > 1 && options.db === undefined) {
    throw new Error('Several servers need a shared PostgreSQL database (--db)');
  }
  const startServer = async (port: number) => {
    const serverArgs = ['serve', FUNCTIONS, '--port', String(port), '--data-dir', dataDir];
    if (options.db !== undefined)
      serverArgs.push('--db', options.db, '--schema', options.schema ?? 'santa');
    // With an IPC channel the server shuts down when this process goes away, however it ends.
    const child = fork(SLEIGH, serverArgs, {
      execArgv: [],
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    servers.push(child);
    child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    const [, url, key] = await waitForLine(
      child,
      // The server prints the key it generated, not one given by SLEIGH_ADMIN_KEY.
      /Sleigh ready at (\S+)\s+(?:Admin key: (\S+)|Using the admin key)/,
      'The Sleigh server',
    );
    return { url: url!, key: key ?? process.env.SLEIGH_ADMIN_KEY! };
  };
  const servers: ChildProcess[] = [];
  // The first server applies the schema; the others (same data directory, same admin key) join.
  const first = await startServer(options.port ?? 3210);
  const rest = await Promise.all(
    Array.from({ length: serverCount - 1 }, () => startServer(0)),
  ).catch(async (error: unknown) => {
    for (const child of servers) child.kill('SIGTERM');
    await Promise.all(servers.map(exited));
    throw error;
  });
  const url = first.url;
  const adminKey = first.key;
  const urls = [url, ...rest.map((server) => server.url)];
  const children: ChildProcess[] = [];
  let page: Server | null = null;
  const shutdown = async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map(exited));
    page?.close();
    for (const server of servers) server.kill('SIGTERM');
    await Promise.all(servers.map(exited));
  };
  try {
    // A fresh workshop every run.
    const admin = new ConvexHttpClient(url);
    (admin as unknown as { setAdminAuth(key: string): void }).setAdminAuth(adminKey);
    // With the admin key the client may call internal functions; its types only know public ones.
    const reset = internal.santa.reset as unknown as FunctionReference<
      'mutation',
      'public',
      { confirm: 'reset' },
      boolean
    >;
    while (!(await admin.mutation(reset, { confirm: 'reset' })));

    let pageUrl: string | null = null;
    if (options.pagePort !== null) {
      const outDir = join(dataDir, 'page');
      await buildPage(outDir);
      page = await servePage(outDir, options.pagePort ?? 3211, url);
      const address = page.address();
      pageUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/`;
    }

    const flags = options.zeroDelay === true ? ['--zero-delay'] : [];
    // Actors take the servers in turn: with several, neighbours coordinate across servers.
    const at = (i: number) => ['--url', urls[i % urls.length]!, ...flags];
    const workers = [
      ...Array.from({ length: reindeer }, (_, i) => [
        '--kind',
        'reindeer',
        '--name',
        `Reindeer ${i + 1}`,
      ]),
      ...Array.from({ length: elves }, (_, i) => ['--kind', 'elf', '--name', `Elf ${i + 1}`]),
    ].map((args, i) => actor('worker.ts', [...args, ...at(i)]));
    children.push(...workers);
    // Santa starts once everyone is registered, so a reindeer group is always all of them.
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            worker.once('message', () => resolve());
            worker.once('exit', (code) =>
              reject(new Error(`A worker exited (${code}) before registering`)),
            );
          }),
      ),
    );
    const santa = actor('santa.ts', [
      ...at(workers.length),
      ...(options.cycles === undefined ? [] : ['--cycles', String(options.cycles)]),
    ]);
    children.push(santa);
    const started = performance.now();
    let cycles = 0;
    santa.on('message', (message: { cycles?: number; done?: number }) => {
      if (message.cycles !== undefined) cycles = message.cycles;
      if (message.done !== undefined) cycles = message.done;
    });
    const timer =
      options.durationSeconds === undefined
        ? null
        : setTimeout(() => santa.kill('SIGTERM'), options.durationSeconds * 1000);
    log(
      `Sleigh ready at ${urls.join(', ')}; ${reindeer} reindeer, ${elves} elves and Santa at work`,
    );
    if (pageUrl !== null) log(`North Pole page: ${pageUrl}`);
    log(`Dashboard: ${url}/dashboard/ (admin key ${adminKey})`);

    const finished = (async () => {
      await exited(santa);
      const seconds = (performance.now() - started) / 1000;
      if (timer !== null) clearTimeout(timer);
      try {
        const report = check(await readHistory(url));
        return { report, cyclesPerSecond: (report.cycles || cycles) / seconds, seconds };
      } finally {
        await shutdown();
      }
    })();
    return { url, urls, pageUrl, adminKey, finished, stop: () => santa.kill('SIGTERM') };
  } catch (error) {
    await shutdown();
    throw error;
  }
}

/** A name for a throwaway PostgreSQL schema. */
export function freshSchema(): string {
  return `santa_${randomBytes(4).toString('hex')}`;
}
