/**
 * The Convex client the dashboard uses, its admin key, and the client's log lines.
 *
 * The client's `logger` receives the log lines of functions this tab calls (prefixed with the
 * function's path) and the client's own connection chatter. Both go to a small in-page bus:
 * the Functions page listens for the lines of the function it runs; nothing is written to the
 * browser console.
 */
import { ConvexReactClient, type ConvexReactClientOptions } from 'convex/react';
import { api } from './api';

type Logger = Exclude<NonNullable<ConvexReactClientOptions['logger']>, boolean>;

export interface LogLine {
  level: 'log' | 'warn' | 'error';
  /** The function the line came from, when the client names one (`module:name`). */
  path: string | null;
  text: string;
}

type Listener = (line: LogLine) => void;
const listeners = new Set<Listener>();

/** Listens to the client's log lines; returns the function that stops listening. */
export function onLogLine(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function show(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

// `%c[CONVEX M(pools:work)] [LOG]` (a function's line) or `[CONVEX A(path)] message` (its error).
const FUNCTION_LINE = /^(?:%c)?\[CONVEX [QMA?]\((.+?)\)\] ?(.*)$/s;

function emit(level: LogLine['level'], args: unknown[]): void {
  const [first, ...rest] = args;
  let path: string | null = null;
  let text: string;
  const match = typeof first === 'string' ? FUNCTION_LINE.exec(first) : null;
  if (typeof first === 'string' && match !== null) {
    path = match[1] ?? null;
    // A console line is `%c<prefix> [LEVEL]`, the colour, then the message.
    const tail = first.startsWith('%c') ? rest.slice(1) : rest;
    text = [match[2] ?? '', ...tail.map(show)].filter((part) => part !== '').join(' ');
  } else {
    text = args.map(show).join(' ');
  }
  for (const listener of listeners) listener({ level, path, text });
}

const logger: Logger = {
  logVerbose: () => {},
  log: (...args: unknown[]) => emit('log', args),
  warn: (...args: unknown[]) => emit('warn', args),
  error: (...args: unknown[]) => emit('error', args),
};

/** `setAdminAuth` is internal to the Convex client (typed @internal), so it is reached by cast. */
interface AdminAuth {
  setAdminAuth(token: string): void;
}

export function createClient(adminKey: string): ConvexReactClient {
  const client = new ConvexReactClient(window.location.origin, {
    unsavedChangesWarning: false,
    logger,
  });
  (client as unknown as AdminAuth).setAdminAuth(adminKey);
  return client;
}

const KEY = 'sleigh.adminKey';

export const storedKey = {
  get(): string | null {
    try {
      return sessionStorage.getItem(KEY);
    } catch {
      return null;
    }
  },
  set(key: string): void {
    sessionStorage.setItem(KEY, key);
  },
  clear(): void {
    sessionStorage.removeItem(KEY);
  },
};

export class KeyRefused extends Error {}
export class Unreachable extends Error {}

/**
 * Checks an admin key by asking for an admin-only query once: the server refuses a wrong key's
 * authentication, so the query runs anonymously and is refused. A server that does not answer
 * in time is reported as unreachable rather than as a refused key.
 */
export async function checkKey(client: ConvexReactClient, timeoutMs = 10_000): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Unreachable('The server did not answer')), timeoutMs);
  });
  try {
    await Promise.race([client.query(api.functions.list, {}), timeout]);
  } catch (error) {
    if (error instanceof Unreachable) throw error;
    throw new KeyRefused(error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
  }
}
