/**
 * What Sleigh's own functions share: the `sleigh/*` syscalls only they may make, and a loose
 * view of `ctx.db` for system tables and tables known only at run time (the generic
 * `convex/server` types want both known when the code is written).
 */
import type { JSONValue, Value } from 'convex/values';

interface ConvexGlobal {
  asyncSyscall(op: string, args: string): Promise<string>;
}

async function call(op: string, args: Record<string, JSONValue>): Promise<JSONValue> {
  const convex = (globalThis as { Convex?: ConvexGlobal }).Convex!;
  return JSON.parse(await convex.asyncSyscall(op, JSON.stringify(args))) as JSONValue;
}

/** A `sleigh/system/*` syscall (tables, functions, logs, pool stats, health). */
export function system(op: string, args: Record<string, JSONValue> = {}): Promise<JSONValue> {
  return call(`sleigh/system/${op}`, args);
}

/** A `sleigh/pool/*` syscall, as the workpool client makes them. */
export function poolOp(op: string, args: Record<string, JSONValue>): Promise<JSONValue> {
  return call(`sleigh/pool/${op}`, args);
}

export type Doc = Record<string, Value> & { _id: string; _creationTime: number };

export interface RangeBuilder {
  eq(field: string, value: Value): RangeBuilder;
}

export interface FilterBuilder {
  eq(a: unknown, b: unknown): unknown;
  and(...terms: unknown[]): unknown;
  field(path: string): unknown;
}

export interface Page {
  page: Doc[];
  isDone: boolean;
  continueCursor: string;
}

export interface LooseQuery {
  withIndex(index: string, range?: (q: RangeBuilder) => RangeBuilder): LooseQuery;
  order(order: 'asc' | 'desc'): LooseQuery;
  filter(predicate: (q: FilterBuilder) => unknown): LooseQuery;
  take(n: number): Promise<Doc[]>;
  first(): Promise<Doc | null>;
  collect(): Promise<Doc[]>;
  count(): Promise<number>;
  paginate(options: PageOptions): Promise<Page>;
}

export interface PageOptions {
  numItems: number;
  cursor: string | null;
  maximumRowsRead?: number;
}

/**
 * Most documents one page of a filtered dashboard view reads. A filter is checked document by
 * document, so a rare match in a big table would otherwise scan (and, subscribed, re-scan on
 * every commit to it) the whole table; such a page comes back short, and "Load more" goes on.
 */
export const FILTERED_PAGE_READS = 5000;

/** `options` with at most FILTERED_PAGE_READS documents read. */
export function filteredPage<T extends PageOptions>(options: T): T {
  const most = Math.min(options.maximumRowsRead ?? FILTERED_PAGE_READS, FILTERED_PAGE_READS);
  return { ...options, maximumRowsRead: most };
}

export interface LooseReader {
  get(id: string): Promise<Doc | null>;
  query(table: string): LooseQuery;
  normalizeId(table: string, id: string): string | null;
}

export interface LooseWriter extends LooseReader {
  insert(table: string, document: Record<string, Value>): Promise<string>;
  replace(id: string, document: Record<string, Value>): Promise<void>;
  delete(id: string): Promise<void>;
}

/** The app's tables, by names known only at run time (queries get the reading half). */
export function appDb(ctx: { db: unknown }): LooseWriter {
  return ctx.db as LooseWriter;
}

/** Sleigh's system tables (`_pool_jobs`, `_scheduled_functions`, …). */
export function systemDb(ctx: { db: { system: unknown } }): LooseReader {
  return ctx.db.system as LooseReader;
}
