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
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const config = args[0] as string | pg.QueryConfig;
      const text = typeof config === 'string' ? config : config.text;
      events.push(`send ${text}`);
      const answer = query(...args);
      void answer.then(
        () => events.push(`done ${text}`),
        () => events.push(`failed ${text}`),
      );
      return answer;
    };
  };
  pool.on('acquire', trace);
  onTestFinished(() => void pool.off('acquire', trace));
  return events;
}
