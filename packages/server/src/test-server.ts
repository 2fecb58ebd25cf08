/**
 * Test helpers: a real Sleigh server on a free port over a fresh store on either driver, and
 * official convex clients connected to it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Driver } from '@sleigh/engine/testing';
import type { Store } from '@sleigh/storage';
import { TEST_APPS } from '@sleigh/testing';
import { ConvexClient, ConvexHttpClient } from 'convex/browser';
import { onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { SleighServer, type ServerOptions } from './server.js';

export { DRIVERS } from '@sleigh/engine/testing';

const here = dirname(fileURLToPath(import.meta.url));
export const ADMIN_KEY = 'sleigh-admin-test-key-0123456789';

export async function startServer(
  driver: Driver,
  options: Partial<Omit<ServerOptions, 'store'>> & {
    app?: string;
    /** Where the store is (several servers on one database share one place). */
    place?: { open(): Promise<Store> };
  } = {},
): Promise<SleighServer> {
  const { place, ...serverOptions } = options;
  const store = await (place ?? driver).open();
  const buildDir = join(here, '..', '.build', randomBytes(6).toString('hex'));
  mkdirSync(buildDir, { recursive: true });
  const server = await SleighServer.start({
    store,
    functionsDir: join(TEST_APPS, options.app ?? 'basic', 'convex'),
    adminKey: ADMIN_KEY,
    port: 0,
    buildDir,
    codegen: false,
    log: () => undefined,
    onWarning: () => undefined,
    ...serverOptions,
  });
  onTestFinished(async () => {
    await server.close();
    await store.close();
    rmSync(buildDir, { recursive: true, force: true });
  });
  return server;
}

/** A ConvexClient over the `ws` WebSocket, closed when the test ends. */
export function connect(server: SleighServer): ConvexClient {
  const client = new ConvexClient(server.url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  onTestFinished(() => client.close());
  return client;
}

/**
 * Authenticates an official client with the admin key (`setAdminAuth` is internal to the
 * clients): it may then call internal functions and Sleigh's `_system/` ones.
 */
export function asAdmin<T extends ConvexClient | ConvexHttpClient>(client: T, key = ADMIN_KEY): T {
  (client as unknown as { setAdminAuth(key: string): void }).setAdminAuth(key);
  return client;
}

export function httpClient(server: SleighServer): ConvexHttpClient {
  return new ConvexHttpClient(server.url);
}

/** Resolves with the first value for which `predicate` holds, of a subscription. */
export function nextValue<T>(
  subscribe: (callback: (value: T) => void) => () => void,
  predicate: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let unsubscribe: (() => void) | null = null;
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      unsubscribe?.();
      reject(new Error('Timed out waiting for a subscription value'));
    }, timeoutMs);
    unsubscribe = subscribe((value) => {
      if (done || !predicate(value)) return;
      done = true;
      clearTimeout(timer);
      queueMicrotask(() => unsubscribe?.());
      resolve(value);
    });
  });
}

/** Polls `condition` until it holds (or fails the test after `timeoutMs`). */
export async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
