/**
 * Sleigh's own functions, for the admin dashboard and tools: internal functions under
 * `_system/`, reachable only with the admin key, over the same protocol as the app's functions
 * (so a dashboard subscribes to them and is pushed changes like any client). They are written
 * with `convex/server` like user code and read through the same syscalls; what user code cannot
 * see (the list of tables, the registry of functions, the process's own figures) comes from
 * `sleigh/system/*` syscalls that only these functions may make. The dashboard's view of them
 * is packages/dashboard/CONTRACT.md.
 */
import { DATA } from './data.js';
import { FUNCTIONS, HEALTH, LOGS } from './observe.js';
import { POOLS } from './pools.js';
import { SCHEDULES } from './schedules.js';

/** The `_system/*` modules, as the registry takes modules. */
export const SYSTEM_MODULES = new Map<string, Record<string, unknown>>([
  ['_system/data', DATA],
  ['_system/pools', POOLS],
  ['_system/schedules', SCHEDULES],
  ['_system/functions', FUNCTIONS],
  ['_system/logs', LOGS],
  ['_system/health', HEALTH],
]);

/** Subscriptions to these read figures kept in memory: the server re-runs them as they move. */
export const LIVE_FIGURES = {
  logs: '_system/logs:',
  everySecond: ['_system/health:', '_system/pools:stats'],
} as const;
