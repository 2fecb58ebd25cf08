/**
 * Test helpers: a fresh store on each driver, and an engine over one of the test apps
 * (`@sleigh/testing`'s `apps/`). Builds go to `.build` inside the repository, so bundled app code
 * resolves `convex` from the repository's node_modules, as an app's own build would.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Store } from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { databaseUrl, TEST_APPS, tempDir } from '@sleigh/testing';
import { onTestFinished } from 'vitest';
import { Engine } from './engine.js';
import type { JobRunnerOptions } from './jobs/runner.js';

const here = dirname(fileURLToPath(import.meta.url));
export const APPS = TEST_APPS;
const BUILDS = join(here, '..', '.build');

export interface Driver {
  readonly name: 'sqlite' | 'postgres';
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** A fresh place for a store, which can be opened again and again (restarts, two processes). */
  place(): { open(): Promise<Store> };
}

function sqlitePlace(): { open(): Promise<Store> } {
  const path = join(tempDir(), 'sleigh.sqlite');
  return { open: () => openSqliteStore({ path }) };
}

function postgresPlace(): { open(): Promise<Store> } {
  const schema = `test_${randomBytes(6).toString('hex')}`;
  const url = databaseUrl();
  onTestFinished(async (context) => {
    if (context.task.result?.state !== 'fail') await PostgresStore.dropSchema(url, schema);
  });
  return { open: () => openPostgresStore({ connectionString: url, schema }) };
}

export const DRIVERS: readonly Driver[] = [
  { name: 'sqlite', open: () => sqlitePlace().open(), place: sqlitePlace },
  { name: 'postgres', open: () => postgresPlace().open(), place: postgresPlace },
];

function scratch(): string {
  const dir = join(BUILDS, randomBytes(6).toString('hex'));
  mkdirSync(dir, { recursive: true });
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An engine over `test/apps/<app>/convex`, closed (with its store) when the test ends. */
export async function startApp(
  app: string,
  driver: Driver,
  options: {
    copy?: boolean;
    /** Files to write into the copied functions folder before it loads (implies `copy`). */
    files?: Record<string, string>;
    store?: Store;
    jobs?: JobRunnerOptions;
    functionTimeoutMs?: number;
  } = {},
): Promise<Engine> {
  const store = options.store ?? (await driver.open());
  let engine: Engine | null = null;
  onTestFinished(async () => {
    await engine?.stopJobs(0);
    await store.close();
  });
  let functionsDir = join(APPS, app, 'convex');
  const dir = scratch();
  if (options.copy === true || options.files !== undefined) {
    cpSync(join(APPS, app), join(dir, app), { recursive: true });
    functionsDir = join(dir, app, 'convex');
    for (const [name, text] of Object.entries(options.files ?? {})) {
      writeFileSync(join(functionsDir, name), text);
    }
  }
  engine = await Engine.start({
    store,
    functionsDir,
    buildDir: join(dir, 'build'),
    onWarning: () => undefined,
    ...(options.functionTimeoutMs === undefined
      ? {}
      : { functionTimeoutMs: options.functionTimeoutMs }),
  });
  if (options.jobs !== undefined) engine.startJobs(options.jobs);
  return engine;
}

/**
 * Counts Node's TimeoutOverflowWarnings from now until the test ends: each is a timer asked to
 * wait longer than 2^31 - 1 ms, which Node cuts to 1 ms.
 */
export function timerOverflows(): () => number {
  let count = 0;
  const listener = (warning: Error) => {
    if (warning.name === 'TimeoutOverflowWarning') count++;
  };
  process.on('warning', listener);
  onTestFinished(() => {
    process.off('warning', listener);
  });
  return () => count;
}
