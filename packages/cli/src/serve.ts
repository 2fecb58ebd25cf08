/**
 * `sleigh dev` and `sleigh serve`: run a server for a functions folder. `dev` also regenerates
 * `_generated/`, reloads the functions when files change (keeping the data) and prints every
 * function's log lines.
 */
import { watch, type FSWatcher } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeThrown, listModules, LoadError, setLogSink } from '@sleigh/engine';
import { adminKeyProblem, loadOrCreateAdminKey, SleighServer } from '@sleigh/server';
import type { Store } from '@sleigh/storage';
import { CliError, describeStore, openStore, type Locations, type Output } from './context.js';
import { noteFreshState } from './fresh-state.js';
import { lockDataDir } from './lock.js';
import { printableLines } from './printable.js';

export interface ServeOptions {
  readonly where: Locations;
  readonly port: number;
  readonly host: string;
  readonly adminKey: string | null;
  readonly watch: boolean;
}

export interface RunningServer {
  readonly server: SleighServer;
  stop(): Promise<void>;
}

/** A positive whole number of milliseconds from the environment, or undefined when unset. */
function msFromEnv(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new CliError(`${name} must be a whole number of milliseconds above 0, not "${text}"`);
  }
  return value;
}

/** The admin key given by flag or environment, checked, and where from; null to use the data directory's. */
function givenAdminKey(flag: string | null): { key: string; source: string } | null {
  const [key, source] =
    flag !== null
      ? [flag, '--admin-key']
      : [process.env.SLEIGH_ADMIN_KEY ?? null, 'SLEIGH_ADMIN_KEY'];
  if (key === null) return null;
  const problem = adminKeyProblem(key);
  if (problem !== null) throw new CliError(`${source} is not a usable admin key: ${problem}`, 2);
  return { key, source };
}

function dataDirAdminKey(dataDir: string): string {
  try {
    return loadOrCreateAdminKey(dataDir);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}

/** What a listening socket's error means to someone who typed --host and --port. */
function addressError(error: NodeJS.ErrnoException, host: string, port: number): CliError | null {
  switch (error.code) {
    case 'EADDRINUSE':
      return new CliError(`Port ${port} is already in use; pick another with --port`);
    case 'EACCES':
      return new CliError(
        `Not allowed to listen on port ${port}; ports below 1024 need privileges`,
      );
    case 'EADDRNOTAVAIL':
      return new CliError(`--host ${host} is not an address of this machine`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return new CliError(`--host ${host} is not a known host name`);
    default:
      return null;
  }
}

/**
 * Listens on the address once and lets go, so that a taken port or a wrong host is reported
 * before the data directory or the database is touched. (Port 0 is always free.)
 */
async function probeAddress(host: string, port: number): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, host, resolve);
    });
  } catch (error) {
    throw addressError(error as NodeJS.ErrnoException, host, port) ?? error;
  }
  await new Promise((resolve) => probe.close(resolve));
}

function startError(error: unknown, options: ServeOptions): unknown {
  if (error instanceof LoadError) return new CliError(error.message);
  return addressError(error as NodeJS.ErrnoException, options.host, options.port) ?? error;
}

/** The built dashboard of @sleigh/dashboard, when it is installed. */
function dashboardOption(): { dashboardDir?: string } {
  try {
    const assets = import.meta.resolve('@sleigh/dashboard/assets');
    return { dashboardDir: fileURLToPath(new URL('./dist/', assets)) };
  } catch {
    return {};
  }
}

/**
 * Starts the server. `ready` is called just before "Sleigh ready" is printed: whoever acts on
 * that line (a supervisor, a test) may signal the process at once, so the handlers go in first.
 */
export async function startServing(
  options: ServeOptions,
  output: Output,
  ready: () => void = () => undefined,
): Promise<RunningServer> {
  const { where } = options;
  // Everything that can be checked without touching the data is checked first.
  const leaseMs = msFromEnv('SLEIGH_JOB_LEASE_MS');
  const shutdownGraceMs = msFromEnv('SLEIGH_SHUTDOWN_GRACE_MS');
  const functionTimeoutMs = msFromEnv('SLEIGH_FUNCTION_TIMEOUT_MS');
  const givenKey = givenAdminKey(options.adminKey);
  listModules(where.functionsDir);
  await probeAddress(options.host, options.port);
  const fresh = await noteFreshState(where);
  const release = lockDataDir(where, 'starting a server');
  let store: Store | null = null;
  let server: SleighServer;
  let adminKey: string;
  try {
    store = await openStore(where);
    adminKey = givenKey?.key ?? dataDirAdminKey(where.dataDir);
    server = await SleighServer.start({
      store,
      functionsDir: where.functionsDir,
      adminKey,
      port: options.port,
      host: options.host,
      codegen: options.watch,
      log: (message) => output.err(`sleigh: ${printableLines(message)}`),
      jobs: {
        log: (message) => output.err(`sleigh: ${printableLines(message)}`),
        ...(leaseMs === undefined ? {} : { leaseMs }),
      },
      ...(shutdownGraceMs === undefined ? {} : { shutdownGraceMs }),
      ...(functionTimeoutMs === undefined ? {} : { functionTimeoutMs }),
      onWarning: (message) => output.err(`sleigh: warning: ${printableLines(message)}`),
      ...dashboardOption(),
    });
  } catch (error) {
    await store?.close();
    await fresh.discard();
    release();
    throw startError(error, options);
  }
  if (options.watch) {
    // Log lines often carry what clients sent: their escape sequences must not reach the terminal.
    setLogSink((execution, line) => output.out(`${execution.path} ${printableLines(line)}`));
  }
  let watcher: FSWatcher | null = null;
  if (options.watch) {
    let timer: NodeJS.Timeout | null = null;
    let reloading = Promise.resolve();
    watcher = watch(where.functionsDir, { recursive: true }, (_event, file) => {
      const name = String(file ?? '');
      if (name.startsWith('_generated') || name.includes('node_modules') || name.startsWith('.'))
        return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => {
        reloading = reloading.then(async () => {
          try {
            await server.reload();
            output.out(`Reloaded ${server.engine.functions().length} functions`);
          } catch (error) {
            output.err(
              `sleigh: reload failed, still serving the previous code:\n${(error as Error).message}`,
            );
          }
        });
      }, 100);
    });
  }
  ready();
  output.out(`Sleigh ready at ${server.url}`);
  // A key the operator gave is the deployment's secret, often shared by a fleet: printed, it
  // would end up in every log. The data directory's own key is printed, for `dev` and the dashboard.
  output.out(
    givenKey === null
      ? `Admin key: ${adminKey} (kept in ${join(where.dataDir, 'admin_key')})`
      : `Using the admin key from ${givenKey.source} (not printed)`,
  );
  output.out(`Dashboard: ${server.url}/dashboard/ (sign in with the admin key)`);
  output.out(
    `Functions: ${where.functionsDir} (${server.engine.functions().length} functions); data: ${describeStore(where)}`,
  );
  let stopping: Promise<void> | null = null;
  return {
    server,
    stop: () =>
      (stopping ??= (async () => {
        watcher?.close();
        setLogSink(null);
        await server.close();
        await store.close();
        release();
      })()),
  };
}

/** Runs until SIGINT or SIGTERM, then shuts down cleanly. */
export async function serveUntilSignalled(options: ServeOptions, output: Output): Promise<number> {
  // Functions run in this process: one that leaves a failed call unawaited (or a query still
  // iterating after it returned) rejects a promise nobody handles, which by default ends the
  // process, and every other client with it. Say so instead, and keep serving.
  const unhandled = (reason: unknown) =>
    output.err(
      `sleigh: a promise was rejected and nothing handled it (a function that did not await one of its calls, say); still serving. ${reason instanceof Error ? `${reason.name}: ${reason.message}` : describeThrown(reason)}`,
    );
  process.on('unhandledRejection', unhandled);
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  // Installed once the server is up (a signal while it starts ends the process, as by default),
  // and before it says so: a SIGTERM sent on reading "Sleigh ready" is a clean stop.
  const listen = () => {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // Whoever read our output went away (`sleigh dev | head`): stop as cleanly as on a signal.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') stop();
    });
    // Started by another program with an IPC channel: shut down when that program goes away.
    if (process.connected) process.once('disconnect', stop);
  };
  const running = await startServing(options, output, listen);
  await stopped;
  output.err('Shutting down');
  await running.stop();
  process.off('unhandledRejection', unhandled);
  // An open IPC channel would keep this process alive after a clean stop.
  if (process.connected) process.disconnect();
  return 0;
}
