/**
 * The mutation log: the outcome of every mutation sent with an idempotency key (a client's
 * session and request id), written in the mutation's own transaction. A mutation resent after
 * a reconnect finds its outcome here and is answered without running again, so it takes
 * effect exactly once even when the first answer was lost with the connection.
 *
 * Records are swept once they are older than any reconnect could be (see `sweep`).
 */
import {
  BY_CREATION_TIME,
  encodeKey,
  newDocumentId,
  prefixEnd,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { SYSTEM_TABLES } from './loader/schema.js';

const TABLE = '_mutation_log';
/** Results bigger than this are not kept: a replay of such a mutation reports it. */
const MAX_RECORDED_JSON = 512 * 1024;
const MAX_RECORDED_LOG = 64 * 1024;

export interface LoggedOutcome {
  /** The result's JSON text, or null when it was too big to keep. */
  readonly json: string | null;
  readonly logLines: string[];
}

export async function findLogged(tx: ReadTransaction, key: string): Promise<LoggedOutcome | null> {
  const start = encodeKey([key]);
  const [entry] = await tx.scan({
    table: TABLE,
    index: 'by_key',
    start,
    end: prefixEnd(start),
    order: 'asc',
    limit: 1,
  });
  if (entry === undefined) return null;
  const document = entry.document;
  return {
    json: typeof document.json === 'string' ? document.json : null,
    logLines: Array.isArray(document.logLines) ? (document.logLines as string[]) : [],
  };
}

export async function recordOutcome(
  tx: WriteTransaction,
  key: string,
  json: string,
  logLines: readonly string[],
  now: number,
): Promise<void> {
  const kept: string[] = [];
  let size = 0;
  for (const line of logLines) {
    size += line.length;
    if (size > MAX_RECORDED_LOG) break;
    kept.push(line);
  }
  await tx.insert(TABLE, {
    _id: newDocumentId(SYSTEM_TABLES._mutation_log.number),
    _creationTime: now,
    key,
    json: json.length <= MAX_RECORDED_JSON ? json : null,
    logLines: kept,
  });
}

/** Deletes records created before `cutoff` (ms), a batch per transaction. Returns how many. */
export async function sweep(store: Store, cutoff: number): Promise<number> {
  let removed = 0;
  for (;;) {
    const { value } = await store.write(async (tx) => {
      if (tx.catalog().table(TABLE) === undefined) return 0;
      const entries = await tx.scan({
        table: TABLE,
        index: BY_CREATION_TIME,
        end: encodeKey([cutoff]),
        order: 'asc',
        limit: 500,
      });
      for (const entry of entries) await tx.delete(TABLE, entry.document._id);
      return entries.length;
    });
    removed += value;
    if (value < 500) return removed;
  }
}
