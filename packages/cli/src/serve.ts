/**
 * `sleigh dev` and `sleigh serve`: run a server for a functions folder. `dev` also regenerates
 * `_generated/`, reloads the functions when files change (keeping the data) and prints every
 * function's log lines.
 */
import { watch, type FSWatcher } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LoadError, setLogSink } from '@sleigh/engine';
import { loadOrCreateAdminKey, SleighServer } from '@sleigh/server';
import {
  CliError,
  describeStore,
  lockDataDir,
  openStore,
  type Locations,
  type Output,
} from './context.js';

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

/** The built dashboard of @sleigh/dashboard, when it is installed. */
function dashboardOption(): { dashboardDir?: string } {
  try {
    const assets = import.meta.resolve('@sleigh/dashboard/assets');
    return { dashboardDir: fileURLToPath(new URL('./dist/', assets)) };
  } catch {
    return {};
  }
}

export async function startServing(options: ServeOptions, output: Output): Promise<RunningServer> {
  const { where } = options;
  const leaseMs = msFromEnv('SLEIGH_JOB_LEASE_MS');
  const shutdownGraceMs = msFromEnv('SLEIGH_SHUTDOWN_GRACE_MS');
  const release = lockDataDir(where, 'starting a server');
  const store = await openStore(where).catch((error: unknown) => {
    release();
    throw error;
  });
  const adminKey =
    options.adminKey ?? process.env.SLEIGH_ADMIN_KEY ?? loadOrCreateAdminKey(where.dataDir);
  let server: SleighServer;
  try {
    server = await SleighServer.start({
      store,
      functionsDir: where.functionsDir,
      adminKey,
      port: options.port,
      host: options.host,
      codegen: options.watch,
      log: (message) => output.err(`sleigh: ${message}`),
      jobs: {
        log: (message) => output.err(`sleigh: ${message}`),
        ...(leaseMs === undefined ? {} : { leaseMs }),
      },
      ...(shutdownGraceMs === undefined ? {} : { shutdownGraceMs }),
      onWarning: (message) => output.err(`sleigh: warning: ${message}`),
      ...dashboardOption(),
    });
  } catch (error) {
    await store.close();
    release();
    if (error instanceof LoadError) throw new CliError(error.message);
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new CliError(`Port ${options.port} is already in use; pick another with --port`);
    }
    throw error;
  }
  if (options.watch) {
    setLogSink((execution, line) => output.out(`${execution.path} ${line}`));
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
  output.out(`Sleigh ready at ${server.url}`);
  output.out(`Admin key: ${adminKey}`);
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
  const running = await startServing(options, output);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // Started by another program with an IPC channel: shut down when that program goes away.
    if (process.connected) process.once('disconnect', stop);
  });
  output.err('Shutting down');
  await running.stop();
  // An open IPC channel would keep this process alive after a clean stop.
  if (process.connected) process.disconnect();
  return 0;
}
