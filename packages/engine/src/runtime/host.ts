/**
 * What the syscalls need from the engine that runs them.
 */
import type { JSONValue } from 'convex/values';
import type { Execution, FunctionKind } from './context.js';
import type { PoolService } from '../jobs/pool-service.js';
import type { DatabaseHost } from './database.js';
import type { Monitor } from '../observe/monitor.js';
import type { ProcessInfo } from '@sleigh/storage';

export interface Host extends DatabaseHost {
  /** `ctx.runQuery` / `ctx.runMutation` inside a query or mutation: the same transaction.
   * Resolves with the called function's result as Convex-encoded JSON text (so do the others). */
  runNested(
    parent: Execution,
    kind: 'query' | 'mutation',
    path: string,
    args: JSONValue,
  ): Promise<string>;
  /** `ctx.runQuery` / `runMutation` / `runAction` inside an action: a new run of its own. */
  runFromAction(
    parent: Execution,
    kind: FunctionKind,
    path: string,
    args: JSONValue,
  ): Promise<string>;
  /**
   * `ctx.scheduler.runAfter/runAt`: in a mutation, part of its transaction; in an action, a
   * transaction of its own. `args` is Convex-encoded JSON. Resolves with the job's id.
   */
  schedule(
    execution: Execution,
    path: string,
    args: JSONValue,
    scheduledTime: number,
  ): Promise<string>;
  /** `ctx.scheduler.cancel`. */
  cancelScheduled(execution: Execution, id: string): Promise<void>;
  /** Workpools: what the `sleigh/pool/*` syscalls ask for. */
  readonly pools: PoolService;
  /** The deployment's name, for `ctx.meta.getDeploymentMetadata()`. */
  readonly deploymentName: string;
  /** The app's functions (Sleigh's own `_system/` ones left out), for the system functions. */
  appFunctions(): AppFunction[];
  /** What this process knows of itself (execution log, pool throughput, commit rate). */
  readonly monitor: Monitor;
  /** The process's and the fleet's vital signs, for the Health page. */
  health(): Promise<HealthReport>;
}

/** A function of the app as the Functions page lists it (validators as exported JSON). */
export type AppFunction = {
  path: string;
  kind: string;
  visibility: string;
  args: JSONValue;
  returns: JSONValue;
};

export interface HealthReport {
  readonly version: string;
  readonly driver: 'sqlite' | 'postgres';
  readonly server: { readonly id: string; readonly startedAt: number };
  readonly servers: ReadonlyArray<ProcessInfo>;
  readonly commitsPerSecond: number;
  readonly commits: number;
  readonly subscriptions: number;
  readonly connections: number;
  readonly executions: number;
}

/**
 * The error a syscall throws when a called function failed: `performAsyncSyscall` in the
 * `convex` package rethrows it as a ConvexError when it has `data` (Convex-encoded JSON).
 */
export class CalledFunctionError extends Error {
  constructor(
    message: string,
    readonly data: JSONValue | undefined,
  ) {
    super(message);
    this.name = 'CalledFunctionError';
  }
}
