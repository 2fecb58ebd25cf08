/**
 * For tests: what a store says to PostgreSQL, in order. Each statement a pooled connection
 * sends is recorded as `send <text>`, and its answer as `done <text>` or `failed <text>`.
 */
import type pg from 'pg';
import { onTestFinished } from 'vitest';
import type { PostgresStore } from './store.js';

export function traceStatements(store: PostgresStore): string[] {
  const pool = (store as unknown as { pool: pg.Pool }).pool;
  const events: string[] = [];
  const traced = new WeakSet<pg.PoolClient>();
  const trace = (client: pg.PoolClient) => {
    if (traced.has(client)) return;
    traced.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const config = args[0] as string | pg.QueryConfig;
      const text = typeof config === 'string' ? config : config.text;
      const answered = (outcome: 'done' | 'failed') => events.push(`${outcome} ${text}`);
      events.push(`send ${text}`);
      // pg-pool's own queries pass a callback (and get no promise back).
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (error: unknown, result: unknown) => {
          answered(error ? 'failed' : 'done');
          (last as (error: unknown, result: unknown) => void)(error, result);
        };
        return query(...args);
      }
      const answer = query(...args) as Promise<unknown>;
      void answer.then(
        () => answered('done'),
        () => answered('failed'),
      );
      return answer;
    };
  };
  pool.on('acquire', trace);
  onTestFinished(() => void pool.off('acquire', trace));
  return events;
}
