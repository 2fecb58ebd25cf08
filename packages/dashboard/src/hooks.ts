import { useQueries } from 'convex/react';
import type { FunctionReference, FunctionReturnType } from 'convex/server';
import { convexToJson } from 'convex/values';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';

export type Live<T> =
  | { status: 'loading'; data: undefined; error: undefined }
  | { status: 'ready'; data: T; error: undefined }
  | { status: 'error'; data: undefined; error: Error };

/**
 * A live query that reports its failure instead of throwing it (as `useQuery` does): a page
 * shows a failing query's message where its data would be. `'skip'` subscribes to nothing.
 */
export function useLive<Q extends FunctionReference<'query'>>(
  query: Q,
  args: Q['_args'] | 'skip',
): Live<FunctionReturnType<Q>> {
  const key = args === 'skip' ? 'skip' : JSON.stringify(convexToJson(args));
  // The request object keeps its identity while the arguments keep their value.
  const requests = useMemo(
    (): Parameters<typeof useQueries>[0] => (args === 'skip' ? {} : { q: { query, args: args } }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [query, key],
  );
  const result = useQueries(requests)['q'] as unknown;
  if (result === undefined) return { status: 'loading', data: undefined, error: undefined };
  if (result instanceof Error) return { status: 'error', data: undefined, error: result };
  return { status: 'ready', data: result as FunctionReturnType<Q>, error: undefined };
}

/** A value that follows `value` after it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/** The current time, refreshed every `ms` (for "3 s ago" labels). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

export type Action = { busy: boolean; error: string | null; message: string | null };

/**
 * Runs a mutation from a button: tracks whether it is in flight, and its error or a message
 * about its result, for the page to show. The promise is always handled.
 */
export function useAction(): [
  Action,
  <T>(run: () => Promise<T>, done?: (value: T) => string | null) => void,
  () => void,
] {
  const [state, setState] = useState<Action>({ busy: false, error: null, message: null });
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const start = useCallback(<T>(run: () => Promise<T>, done?: (value: T) => string | null) => {
    setState({ busy: true, error: null, message: null });
    run().then(
      (value) => {
        if (mounted.current) setState({ busy: false, error: null, message: done?.(value) ?? null });
      },
      (error: unknown) => {
        if (mounted.current) setState({ busy: false, error: errorMessage(error), message: null });
      },
    );
  }, []);
  const reset = useCallback(() => setState({ busy: false, error: null, message: null }), []);
  return [state, start, reset];
}

/** What an error says, without the client's request-id preamble when it has one. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const data = (error as { data?: unknown }).data;
    if (data !== undefined && error.name === 'ConvexError') {
      return typeof data === 'string' ? data : JSON.stringify(data);
    }
    return cleanServerError(error.message);
  }
  return String(error);
}

/**
 * The Convex client wraps a function's error as `[CONVEX M(path)] <message>\n  Called by client`;
 * the dashboard shows the server's message as it was written.
 */
export function cleanServerError(message: string): string {
  return message
    .replace(/^\[CONVEX [QMA?]\(.*?\)\] /, '')
    .replace(/\n\s*Called by client$/, '')
    .trim();
}
