/**
 * What functions ask of workpools, checked before anything is written: a pool's options, the
 * jobs of an enqueue call (function, retries, dependencies, unique keys, groups) and the order
 * to write them in. Every refusal is an InvalidArguments error naming the pool and the field.
 */
import type { JSONValue } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import type { FunctionKind } from '../runtime/context.js';
import type { DuplicatePolicy } from './pool-graph.js';
import {
  DEFAULT_FAILED_TTL_MS,
  DEFAULT_RETRY,
  DEFAULT_TTL_MS,
  isPoolJobId,
  type DependencyFailurePolicy,
  type PoolOptions,
  type RetryBehavior,
} from './pool-jobs.js';
import { SCHEDULE_LIMIT_MS } from './timers.js';

export interface EnqueueItem {
  fn: string;
  /** `auto` takes the function's own kind (pool.ctx's scheduler). */
  kind: FunctionKind | 'auto';
  args: JSONValue;
  name?: string;
  runAt?: number;
  retry?: boolean | RetryBehavior;
  onComplete?: { fn: string; context?: JSONValue };
  /** Jobs to wait for: ids, or `{ item }`, the index of another job of this call. */
  dependsOn?: Array<string | { item: number }>;
  onDependencyFailure?: 'fail' | 'cancel' | 'run';
  uniqueKey?: string;
  onDuplicate?: DuplicatePolicy;
  uniqueForMs?: number;
  /** What to call the job in errors about the call (a graph's node key). */
  node?: string;
  priority?: number;
  group?: string;
}

/** What an item asks beyond the job itself: its dependencies and its unique key. */
export interface Links {
  readonly dependsOn: Array<string | { item: number }>;
  readonly onDependencyFailure: DependencyFailurePolicy | undefined;
  readonly unique: { key: string; policy: DuplicatePolicy; windowMs: number | null } | null;
}

/** Most jobs one call may enqueue. */
export const MAX_ENQUEUE_PER_CALL = 10_000;

export function invalid(message: string): SyscallError {
  return new SyscallError(FunctionErrorCode.InvalidArguments, message);
}

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function positiveNumber(value: unknown, what: string, integer = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${what} must be a number ≥ 0, not ${JSON.stringify(value)}`);
  }
  // Whole numbers go to the database as integers: beyond 2^53 they are neither exact nor int64.
  if (integer && (!Number.isInteger(value) || value > Number.MAX_SAFE_INTEGER)) {
    throw invalid(`${what} must be a whole number up to ${Number.MAX_SAFE_INTEGER}, not ${value}`);
  }
  return value;
}

/** A time that must be more than 0 (a timeout of 0 would fail every attempt at once). */
function moreThanZero(value: unknown, what: string): number {
  const n = positiveNumber(value, what);
  if (n === 0) throw invalid(`${what} must be more than 0 (leave it out for no limit)`);
  return n;
}

export function parseRetry(value: unknown, what: string): RetryBehavior {
  if (!isRecord(value)) throw invalid(`${what} must be { maxAttempts, initialBackoffMs, base }`);
  const maxAttempts = positiveNumber(value.maxAttempts, `${what}.maxAttempts`, true);
  if (maxAttempts < 1) throw invalid(`${what}.maxAttempts must be at least 1`);
  const initialBackoffMs = positiveNumber(value.initialBackoffMs, `${what}.initialBackoffMs`);
  // Retries are scheduled as runAt is: within 5 years (later backoffs are capped there).
  if (initialBackoffMs > SCHEDULE_LIMIT_MS) {
    throw invalid(`${what}.initialBackoffMs must be at most 5 years (${SCHEDULE_LIMIT_MS} ms)`);
  }
  const base = positiveNumber(value.base, `${what}.base`);
  if (base < 1) throw invalid(`${what}.base must be at least 1`);
  return { maxAttempts, initialBackoffMs, base };
}

/** A pool's name and options as the Workpool constructor gave them, checked. */
export function parsePool(name: unknown, options: unknown): { name: string; options: PoolOptions } {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
    throw invalid(
      `A workpool's name must be 1 to 64 letters, digits or _ . : -, not ${JSON.stringify(name)}`,
    );
  }
  const o = isRecord(options) ? options : {};
  const maxParallelism =
    o.maxParallelism === undefined
      ? 10
      : positiveNumber(o.maxParallelism, `Workpool "${name}": maxParallelism`, true);
  if (maxParallelism < 1 || maxParallelism > 1000) {
    throw invalid(`Workpool "${name}": maxParallelism must be between 1 and 1000`);
  }
  const positiveWhole = (value: unknown, what: string): number | null => {
    if (value === undefined || value === null) return null;
    const n = positiveNumber(value, `Workpool "${name}": ${what}`, true);
    if (n < 1) throw invalid(`Workpool "${name}": ${what} must be at least 1`);
    return n;
  };
  const rate = (value: unknown, what: string): { count: number; periodMs: number } | null => {
    if (value === undefined || value === null) return null;
    if (!isRecord(value)) throw invalid(`Workpool "${name}": ${what} must be { count, periodMs }`);
    const count = positiveWhole(value.count, `${what}.count`)!;
    const periodMs = positiveNumber(value.periodMs, `Workpool "${name}": ${what}.periodMs`);
    if (count === null || periodMs <= 0) {
      throw invalid(`Workpool "${name}": ${what} needs a count ≥ 1 and a periodMs > 0`);
    }
    return { count, periodMs };
  };
  return {
    name,
    options: {
      maxParallelism,
      groupParallelism: positiveWhole(o.groupParallelism, 'groupParallelism'),
      rateLimit: rate(o.rateLimit, 'rateLimit'),
      groupRateLimit: rate(o.groupRateLimit, 'groupRateLimit'),
      actionTimeoutMs:
        o.actionTimeoutMs === undefined || o.actionTimeoutMs === null
          ? null
          : moreThanZero(o.actionTimeoutMs, `Workpool "${name}": actionTimeoutMs`),
      heartbeatTimeoutMs: positiveWhole(o.heartbeatTimeoutMs, 'heartbeatTimeoutMs'),
      ttlMs:
        o.ttl === undefined ? DEFAULT_TTL_MS : positiveNumber(o.ttl, `Workpool "${name}": ttl`),
      failedTtlMs:
        o.failedTtl === undefined
          ? DEFAULT_FAILED_TTL_MS
          : positiveNumber(o.failedTtl, `Workpool "${name}": failedTtl`),
      retryActionsByDefault: o.retryActionsByDefault === true,
      defaultRetryBehavior:
        o.defaultRetryBehavior === undefined
          ? DEFAULT_RETRY
          : parseRetry(o.defaultRetryBehavior, `Workpool "${name}": defaultRetryBehavior`),
    },
  };
}

const MAX_UNIQUE_KEY = 256;

export function parseLinks(pool: string, item: EnqueueItem, index: number, count: number): Links {
  const what = `Workpool "${pool}"`;
  const dependsOn: Links['dependsOn'] = [];
  if (item.dependsOn !== undefined) {
    if (!Array.isArray(item.dependsOn))
      throw invalid(`${what}: dependsOn must be a list of job ids`);
    for (const ref of item.dependsOn) {
      if (typeof ref === 'string' && isPoolJobId(ref)) dependsOn.push(ref);
      else if (isRecord(ref) && Number.isInteger(ref.item) && ref.item >= 0 && ref.item < count) {
        if (ref.item === index) throw invalid(`${what}: a job cannot depend on itself`);
        dependsOn.push({ item: ref.item });
      } else {
        throw invalid(`${what}: dependsOn: ${JSON.stringify(ref)} is not the id of a pool job`);
      }
    }
  }
  const policy = item.onDependencyFailure;
  if (policy !== undefined && policy !== 'fail' && policy !== 'cancel' && policy !== 'run') {
    throw invalid(
      `${what}: onDependencyFailure must be "fail", "cancel" or "run", not ${JSON.stringify(policy)}`,
    );
  }
  let unique: Links['unique'] = null;
  if (item.uniqueKey !== undefined) {
    if (
      typeof item.uniqueKey !== 'string' ||
      item.uniqueKey === '' ||
      item.uniqueKey.length > MAX_UNIQUE_KEY
    ) {
      throw invalid(`${what}: uniqueKey must be a string of 1 to ${MAX_UNIQUE_KEY} characters`);
    }
    const duplicate = item.onDuplicate ?? 'skip';
    if (duplicate !== 'skip' && duplicate !== 'replace') {
      throw invalid(
        `${what}: onDuplicate must be "skip" or "replace", not ${JSON.stringify(duplicate)}`,
      );
    }
    unique = {
      key: item.uniqueKey,
      policy: duplicate,
      windowMs:
        item.uniqueForMs === undefined
          ? null
          : positiveNumber(item.uniqueForMs, `${what}: uniqueForMs`),
    };
  } else if (item.onDuplicate !== undefined || item.uniqueForMs !== undefined) {
    throw invalid(`${what}: onDuplicate and uniqueForMs need a uniqueKey`);
  }
  return { dependsOn, onDependencyFailure: policy, unique };
}

/**
 * The order to insert a call's jobs in: each after the jobs of the call it depends on. A cycle
 * is refused, naming it.
 */
export function enqueueOrder(
  pool: string,
  items: readonly EnqueueItem[],
  links: readonly Links[],
): number[] {
  const label = (i: number) => items[i]?.node ?? items[i]?.name ?? `job #${i}`;
  const order: number[] = [];
  const state = new Array<'new' | 'visiting' | 'done'>(items.length).fill('new');
  const path: number[] = [];
  const visit = (i: number): void => {
    if (state[i] === 'done') return;
    if (state[i] === 'visiting') {
      const cycle = [...path.slice(path.indexOf(i)), i].map(label).join(' → ');
      throw invalid(`Workpool "${pool}": the jobs depend on each other in a cycle: ${cycle}`);
    }
    state[i] = 'visiting';
    path.push(i);
    for (const ref of links[i]!.dependsOn) if (typeof ref !== 'string') visit(ref.item);
    path.pop();
    state[i] = 'done';
    order.push(i);
  };
  for (let i = 0; i < items.length; i++) visit(i);
  return order;
}

export function parseGroup(pool: string, group: unknown): string {
  if (typeof group !== 'string' || group === '' || group.length > 256) {
    throw invalid(`Workpool "${pool}": group must be a string of 1 to 256 characters`);
  }
  return group;
}

/** A list of pool job ids, or null when none was given. */
export function parseIds(ids: unknown, what: string): string[] | null {
  if (ids === undefined || ids === null) return null;
  if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string' || !isPoolJobId(id))) {
    throw invalid(`Workpool ${what}: ids must be a list of pool job ids`);
  }
  return ids as string[];
}
