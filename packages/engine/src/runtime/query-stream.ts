/**
 * Evaluating serialized queries (`ctx.db.query(...)...`) against the store.
 *
 * A query is a source (a full table scan, or a range of an index) and a pipeline of operators
 * (filters and limits, in the order the user chained them). Documents are fetched from the store
 * in pages that grow as the caller keeps pulling, and handed out one at a time
 * (`queryStreamNext`). The read set records exactly the keys the query pulled from its source:
 * a `first()` on a large table reads one key, not a page.
 *
 *   created ──next()──▶ streaming ──source exhausted / a limit reached / closed──▶ done
 *                                   (read set recorded once, on the way to done)
 */
import {
  BY_CREATION_TIME,
  compareBytes,
  keySuccessor,
  prefixEnd,
  type Document,
  type IndexEntry,
  type IndexInfo,
  type ReadTransaction,
} from '@sleigh/storage';
import type { JSONValue } from 'convex/values';
import type { TransactionState } from './context.js';
import { compileFilter } from './filters.js';
import { indexRange, type RangeExpression } from './ranges.js';

export type SerializedQuery = {
  source:
    | { type: 'FullTableScan'; tableName: string; order: 'asc' | 'desc' | null }
    | {
        type: 'IndexRange';
        indexName: string;
        range: RangeExpression[];
        order: 'asc' | 'desc' | null;
      }
    | { type: 'Search'; indexName: string; filters: unknown[] };
  operators: Array<{ filter: JSONValue } | { limit: number }>;
};

type Stage =
  { kind: 'filter'; test: (document: Document) => boolean } | { kind: 'limit'; remaining: number };

/** Where a query reads: one index, an interval of it, a direction. */
export interface ResolvedSource {
  readonly table: string;
  /** Null when the table does not exist: the query is empty (and depends on the catalog). */
  readonly index: IndexInfo | null;
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly order: 'asc' | 'desc';
}

const FULL_START = new Uint8Array(0);
const FULL_END = prefixEnd(new Uint8Array(0));

export function resolveSource(state: TransactionState, query: SerializedQuery): ResolvedSource {
  const source = query.source;
  const catalog = state.tx.catalog();
  if (source.type === 'Search') {
    throw new Error(
      `Search indexes are not supported by Sleigh yet (query on "${source.indexName}")`,
    );
  }
  const order = source.order ?? 'asc';
  if (source.type === 'FullTableScan') {
    const index = catalog.index(source.tableName, BY_CREATION_TIME) ?? null;
    return { table: source.tableName, index, start: FULL_START, end: FULL_END, order };
  }
  // "table.index": neither name holds a dot, so a table name that does is the caller's error
  // (split at the first dot, it would be reported as a missing index of another table).
  const dot = source.indexName.lastIndexOf('.');
  const table = source.indexName.slice(0, dot);
  const indexName = source.indexName.slice(dot + 1);
  if (table.includes('.')) throw new Error(`"${table}" is not a table name: it holds a "."`);
  if (catalog.table(table) === undefined) {
    return { table, index: null, start: FULL_START, end: FULL_END, order };
  }
  const index = catalog.index(table, indexName);
  if (index === undefined) {
    throw new Error(
      `Index "${indexName}" not found on table "${table}"; is it declared in schema.ts?`,
    );
  }
  const { start, end } = indexRange(index, source.range);
  return { table, index, start, end, order };
}

function compileStages(query: SerializedQuery): Stage[] {
  return query.operators.map((operator) =>
    'filter' in operator
      ? { kind: 'filter', test: compileFilter(operator.filter) }
      : { kind: 'limit', remaining: operator.limit },
  );
}

/** Pulls documents of a source in order, in growing pages, remembering the last one pulled. */
class SourceCursor {
  private buffer: IndexEntry[] = [];
  private position = 0;
  private exhausted: boolean;
  private pageSize: number;
  private nextStart: Uint8Array;
  private nextEnd: Uint8Array;
  private last: IndexEntry | null = null;
  pulled = 0;

  constructor(
    private readonly tx: ReadTransaction,
    readonly source: ResolvedSource,
    firstPage: number,
  ) {
    this.exhausted = source.index === null;
    this.pageSize = Math.max(1, Math.min(firstPage, 128));
    this.nextStart = source.start;
    this.nextEnd = source.end;
  }

  get done(): boolean {
    return this.exhausted && this.position >= this.buffer.length;
  }

  /** The key of the last document handed out, or null before the first. */
  get lastKey(): Uint8Array | null {
    return this.last === null ? null : this.last.key;
  }

  async next(): Promise<IndexEntry | null> {
    if (this.position >= this.buffer.length) {
      if (this.exhausted) return null;
      await this.fetch();
      if (this.position >= this.buffer.length) return null;
    }
    this.last = this.buffer[this.position++]!;
    this.pulled++;
    return this.last;
  }

  private async fetch(): Promise<void> {
    const index = this.source.index!;
    const entries = await this.tx.scan({
      table: this.source.table,
      index: index.name,
      start: this.nextStart,
      end: this.nextEnd,
      order: this.source.order,
      limit: this.pageSize,
    });
    this.buffer = entries;
    this.position = 0;
    if (entries.length < this.pageSize) {
      this.exhausted = true;
    } else {
      const last = entries[entries.length - 1]!.key;
      if (this.source.order === 'asc') this.nextStart = keySuccessor(last);
      else this.nextEnd = last;
    }
    this.pageSize = Math.min(this.pageSize * 2, 1024);
  }

  /** The interval this cursor has read: to its last key, or all of it once exhausted. */
  readInterval(): { start: Uint8Array; end: Uint8Array } | null {
    const { start, end, order } = this.source;
    if (this.done) return { start, end };
    const lastKey = this.lastKey;
    if (lastKey === null) return null;
    return order === 'asc' ? { start, end: keySuccessor(lastKey) } : { start: lastKey, end };
  }
}

function recordRead(state: TransactionState, cursor: SourceCursor): void {
  const index = cursor.source.index;
  if (index === null) {
    state.readSet.catalogDependent = true;
    return;
  }
  const interval = cursor.readInterval();
  if (interval !== null) state.readSet.addInterval(index.id, interval.start, interval.end);
}

export class QueryStream {
  private readonly cursor: SourceCursor;
  private readonly stages: Stage[];
  private finished = false;

  /** The table it reads. */
  get table(): string {
    return this.cursor.source.table;
  }

  constructor(
    private readonly state: TransactionState,
    query: SerializedQuery,
  ) {
    const source = resolveSource(state, query);
    this.stages = compileStages(query);
    const first = this.stages[0];
    this.cursor = new SourceCursor(
      state.tx,
      source,
      first?.kind === 'limit' ? first.remaining : 32,
    );
  }

  async next(): Promise<IndexEntry | null> {
    for (;;) {
      if (this.finished) return null;
      // A limit that is used up ends the stream before another document is read.
      if (this.stages.some((stage) => stage.kind === 'limit' && stage.remaining <= 0)) {
        this.close();
        return null;
      }
      const entry = await this.cursor.next();
      if (entry === null) {
        this.close();
        return null;
      }
      if (this.passes(entry)) return entry;
    }
  }

  private passes(entry: IndexEntry): boolean {
    for (const stage of this.stages) {
      if (stage.kind === 'filter') {
        if (!stage.test(entry.document)) return false;
      } else {
        stage.remaining--;
      }
    }
    return true;
  }

  /** Ends the stream and records what it read. Safe to call more than once. */
  close(): void {
    if (this.finished) return;
    this.finished = true;
    recordRead(this.state, this.cursor);
  }
}

/**
 * Pagination cursors: where a page ends, as `<index id>.<order>.<position>`, the position being
 * the base64url key of the last document considered, or `start` or `end`. Opaque to users.
 */
type Position = { kind: 'start' } | { kind: 'end' } | { kind: 'key'; key: Uint8Array };

function encodeCursor(index: IndexInfo, order: 'asc' | 'desc', position: Position): string {
  const text =
    position.kind === 'key' ? Buffer.from(position.key).toString('base64url') : position.kind;
  return `${index.id}.${order}.${text}`;
}

function decodeCursor(
  cursor: string,
  index: IndexInfo,
  order: 'asc' | 'desc',
  range: { readonly start: Uint8Array; readonly end: Uint8Array },
): Position {
  const [id, direction, position, extra] = cursor.split('.');
  const shown = `"${cursor.slice(0, 40)}${cursor.length > 40 ? '…' : ''}"`;
  if (
    id === undefined ||
    !/^\d+$/.test(id) ||
    (direction !== 'asc' && direction !== 'desc') ||
    position === undefined ||
    extra !== undefined
  ) {
    throw new Error(`Invalid pagination cursor ${shown}: it is not a cursor this server made`);
  }
  if (id !== String(index.id) || direction !== order) {
    throw new Error(
      `Invalid pagination cursor ${shown}: it belongs to a different query (index or order changed)`,
    );
  }
  if (position === 'start' || position === 'end') return { kind: position };
  const key = Buffer.from(position, 'base64url');
  // Node decodes base64 leniently (skipping what is not base64): a damaged key would read as
  // another one, even as the empty key that ends every page.
  if (key.length === 0 || key.toString('base64url') !== position) {
    throw new Error(`Invalid pagination cursor ${shown}: its position is damaged`);
  }
  // A cursor of the same index and order but another range (another channel, another tenant)
  // would move the page outside what the query asks for.
  if (compareBytes(key, range.start) < 0 || compareBytes(key, range.end) >= 0) {
    throw new Error(
      `Invalid pagination cursor ${shown}: it belongs to a different query (its position is outside this query's range)`,
    );
  }
  return { kind: 'key', key: new Uint8Array(key) };
}

export interface PageRequest {
  readonly query: SerializedQuery;
  readonly cursor: string | null;
  readonly endCursor: string | null;
  /**
   * The end cursor came from the subscription's journal, not the caller: one that no longer
   * fits the query (new code) is dropped rather than failing the query.
   */
  readonly endFromJournal?: boolean;
  readonly pageSize: number;
  readonly maximumRowsRead: number | null;
}

export interface Page {
  /** The table it reads. */
  readonly table: string;
  readonly page: IndexEntry[];
  readonly isDone: boolean;
  readonly continueCursor: string;
  /**
   * Where the page could be cut in two (after its middle document), null for a page of fewer
   * than two. Convex's clients split a page that grew past twice its size there: a pinned page
   * (see PageJournal) that documents keep landing in stays small that way.
   */
  readonly splitCursor: string | null;
}

/**
 * One page of a paginated query. The page covers the keys from its cursor to its continue
 * cursor, and that is what it records as read, so a page's result stays put (and its
 * subscription quiet) while documents change on other pages. With an end cursor (how clients pin
 * a loaded page) the page runs exactly to it, whatever its size.
 */
export async function queryPage(state: TransactionState, request: PageRequest): Promise<Page> {
  if (request.query.operators.some((operator) => 'limit' in operator)) {
    throw new Error('paginate() cannot be combined with take() or limit()');
  }
  const size: unknown = request.pageSize;
  // NaN and Infinity cross the syscall boundary as null. A page of 0 would never move on.
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    throw new Error(
      `paginate(): numItems must be a whole number of at least 1, not ${JSON.stringify(size)}`,
    );
  }
  const most = request.maximumRowsRead;
  // A page that may read nothing would never move on either.
  if (most !== null && (!Number.isSafeInteger(most) || most < 1)) {
    throw new Error(
      `paginate(): maximumRowsRead must be a whole number of at least 1, not ${JSON.stringify(most)}`,
    );
  }
  const source = resolveSource(state, request.query);
  const index = source.index;
  if (index === null) {
    state.readSet.catalogDependent = true;
    return {
      table: source.table,
      page: [],
      isDone: true,
      continueCursor: request.cursor ?? '',
      splitCursor: null,
    };
  }
  const { order } = source;
  let { start, end } = source;
  const from: Position =
    request.cursor === null || request.cursor === ''
      ? { kind: 'start' }
      : decodeCursor(request.cursor, index, order, source);
  if (from.kind === 'end') {
    return {
      table: source.table,
      page: [],
      isDone: true,
      continueCursor: encodeCursor(index, order, from),
      splitCursor: null,
    };
  }
  if (from.kind === 'key') {
    if (order === 'asc') start = keySuccessor(from.key);
    else end = from.key;
  }
  let until: Position | null = null;
  if (request.endCursor !== null && request.endCursor !== '') {
    try {
      until = decodeCursor(request.endCursor, index, order, source);
    } catch (error) {
      if (request.endFromJournal !== true) throw error;
    }
  }
  if (until?.kind === 'key') {
    if (order === 'asc') end = keySuccessor(until.key);
    else start = until.key;
  }
  const filters = compileStages(request.query).flatMap((stage) =>
    stage.kind === 'filter' ? [stage.test] : [],
  );
  const cursor = new SourceCursor(
    state.tx,
    { ...source, start, end },
    until === null ? request.pageSize + 1 : 128,
  );
  const page: IndexEntry[] = [];
  for (;;) {
    if (until === null) {
      if (page.length >= request.pageSize) break;
      if (request.maximumRowsRead !== null && cursor.pulled >= request.maximumRowsRead) break;
    }
    const entry = await cursor.next();
    if (entry === null) break;
    if (filters.every((test) => test(entry.document))) page.push(entry);
  }
  recordRead(state, cursor);
  const middle = page[Math.floor(page.length / 2) - 1];
  const splitCursor =
    middle === undefined ? null : encodeCursor(index, order, { kind: 'key', key: middle.key });
  if (until !== null) {
    // A pinned page ends where it was pinned; it is the last page only if pinned to the end.
    return {
      table: source.table,
      page,
      isDone: until.kind === 'end',
      continueCursor: encodeCursor(index, order, until),
      splitCursor,
    };
  }
  if (cursor.done) {
    return {
      table: source.table,
      page,
      isDone: true,
      continueCursor: encodeCursor(index, order, { kind: 'end' }),
      splitCursor,
    };
  }
  const lastKey = cursor.lastKey;
  return {
    table: source.table,
    page,
    isDone: false,
    continueCursor: encodeCursor(
      index,
      order,
      lastKey === null ? from : { kind: 'key', key: lastKey },
    ),
    splitCursor,
  };
}
