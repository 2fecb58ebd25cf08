/**
 * What every actor process shares: a ConvexClient to the workshop's server, the paces (followed
 * live through a subscription), and waiting on a query until its value says it is time.
 */
import { ConvexClient } from 'convex/browser';
import type { FunctionReference } from 'convex/server';
import { WebSocket } from 'ws';
import { api } from '../../convex/_generated/api.js';

export interface Paces {
  workMs: number;
  vacationMs: number;
}

export function connect(url: string): ConvexClient {
  return new ConvexClient(url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
}

/** The current paces, kept up to date by a subscription; zero when running at zero delay. */
export function followPaces(client: ConvexClient, zeroDelay: boolean): Paces {
  const paces: Paces = { workMs: 0, vacationMs: 0 };
  if (zeroDelay) return paces;
  client.onUpdate(api.speeds.get, {}, (speeds) => {
    paces.workMs = speeds.workMs;
    paces.vacationMs = speeds.vacationMs;
  });
  return paces;
}

/** Sleeps a random time up to `maxMs` (no time at all for 0). */
export function randomSleep(maxMs: number): Promise<void> {
  if (maxMs <= 0) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs));
}

/** Resolves with the query's first value for which `ready` holds. */
export function waitUntil<Args extends Record<string, unknown>, T>(
  client: ConvexClient,
  query: FunctionReference<'query', 'public', Args, T>,
  args: Args,
  ready: (value: T) => boolean,
): Promise<T> {
  return new Promise((resolve) => {
    let done = false;
    const unsubscribe = client.onUpdate(query, args, (value) => {
      if (done || !ready(value)) return;
      done = true;
      queueMicrotask(() => unsubscribe());
      resolve(value);
    });
  });
}

/** Parses `--name value` pairs. */
export function flags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out.set(arg.slice(2), 'true');
    else out.set(arg.slice(2), (i++, next));
  }
  return out;
}
