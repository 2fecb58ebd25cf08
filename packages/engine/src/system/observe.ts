/**
 * `_system/logs`, `_system/health` and `_system/functions`: the recent executions, vital signs
 * and the app's functions. Executions and rates live in each process's memory (observe/); the
 * server re-runs subscriptions to these as they change, so they are live like the rest.
 */
import { internalQueryGeneric } from 'convex/server';
import { v, type JSONValue } from 'convex/values';
import { system, systemDb } from './syscall.js';

/** This server's recent executions, newest first (the Logs page). */
const recent = internalQueryGeneric({
  args: {
    function: v.optional(v.string()),
    outcome: v.optional(v.union(v.literal('success'), v.literal('failure'))),
    limit: v.optional(v.number()),
  },
  handler: async (_ctx, args) => await system('logs', args as Record<string, JSONValue>),
});

/** How long ready pool jobs scanned per pool for the oldest (priorities reorder them). */
const LAG_SCAN = 100;

/**
 * Servers, commit rate, subscriptions, and how far behind the pools (paused ones aside) and the
 * scheduler are.
 */
const status = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const now = Date.now();
    const db = systemDb(ctx);
    let oldestReady = now;
    for (const pool of await db.query('_pools').collect()) {
      // A paused pool waits on purpose: its jobs are not late.
      if (pool.paused === true) continue;
      const ready = await db
        .query('_pool_jobs')
        .withIndex('by_due', (q) => q.eq('pool', pool.name as string).eq('state', 'pending'))
        .take(LAG_SCAN);
      for (const job of ready) oldestReady = Math.min(oldestReady, job.due as number);
    }
    const nextScheduled = await db
      .query('_scheduled_functions')
      .withIndex('by_state_time', (q) => q.eq('state.kind', 'pending'))
      .first();
    const scheduledTime = (nextScheduled?.scheduledTime as number | undefined) ?? now;
    const report = (await system('health')) as Record<string, JSONValue> & {
      servers: Array<Record<string, JSONValue> & { id: string }>;
    };
    // Which code each server runs (loader/fleet-guard.ts records it): a deploy's progress.
    const code = new Map<string, string>();
    for (const record of await db.query('_servers').collect()) {
      code.set(record.process as string, record.code as string);
    }
    return {
      ...report,
      servers: report.servers.map((server) => ({ ...server, code: code.get(server.id) ?? null })),
      jobLagMs: Math.max(0, now - oldestReady),
      scheduledLagMs: Math.max(0, now - scheduledTime),
    };
  },
});

/** The app's functions: path, kind, visibility, argument and return validators. */
const list = internalQueryGeneric({
  args: {},
  handler: async () => await system('functions'),
});

export const LOGS = { recent };
export const HEALTH = { status };
export const FUNCTIONS = { list };
