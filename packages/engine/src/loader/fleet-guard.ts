/**
 * What keeps servers with incompatible code off one database. A server that starts (or reloads)
 * applies its schema: two versions whose schemas differ would drop each other's indexes, or
 * write documents the other refuses. So every server records the *shape* of its deployment in
 * `_servers`: a hash of its schema, crons and functions (paths, kinds, validators), not of
 * their bodies, and its *outline* (the same, part by part). In the transaction that applies its
 * schema, a server refuses to go on while a live server is recorded that it does not *extend*,
 * and removes the records of servers that are gone.
 *
 * A server extends another when it keeps the other's schema (each table with its validator
 * and indexes, and whether documents are validated) unchanged; it may add tables and indexes.
 * Functions may differ in any way (added, removed, given other arguments): each job records
 * the signature of its function where it was enqueued, and while versions share the database a
 * server leaves the work it does not run as enqueued to the servers that do (fleet-view.ts).
 * Crons may differ too: the crons in force stay the first servers' until every live server
 * declares the same (jobs/cron-rollout.ts). So a deploy that keeps the schema's tables and
 * indexes rolls out server by server. An old server restarting beside a new one that added to
 * the schema is refused (it would drop the new indexes), and so is any change to existing
 * tables or indexes while the old servers run.
 *
 *   start ──read _servers──▶ a live server this one does not extend? ──yes──▶ refuse (LoadError)
 *                                      │ no
 *                                      ▼
 *            delete the records of gone servers, write this one's ──▶ apply the schema
 */
import { createHash } from 'node:crypto';
import {
  newDocumentId,
  type Commit,
  type Document,
  type ProcessInfo,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import type { CronSpec } from '../jobs/crons.js';
import { LoadError } from './bundle.js';
import type { FunctionInfo } from './registry.js';
import { SYSTEM_TABLES, type Schema } from './schema.js';

export const SERVERS = '_servers';

export interface ServerRecord extends Document {
  /** The store's id of the server's process (`ProcessInfo.id`). */
  process: string;
  /** Its deployment's shape (`deploymentShape`). */
  shape: string;
  /** Its deployment part by part (absent in records of servers from before outlines). */
  outline?: Outline;
  /** The hash of its sources, for operators telling versions apart. */
  code: string;
}

/**
 * A deployment part by part, each part a short hash: what one server must have unchanged for
 * another to extend it, and what the fleet view and the cron rollout compare.
 */
export type Outline = {
  /** Whether documents are checked against the schema (null: no schema). */
  readonly validation: boolean | null;
  /** Each table's document validator, by table. */
  readonly tables: Readonly<Record<string, string>>;
  /** Each index's fields, by `table.index`. */
  readonly indexes: Readonly<Record<string, string>>;
  /** Every cron together: which servers agree on the crons in force (cron-rollout.ts). */
  readonly crons: string;
  /** Each function's kind, visibility and validators, by path. */
  readonly functions: Readonly<Record<string, string>>;
};

/** This server, as the guard sees it. */
export interface FleetMember {
  readonly shape: string;
  readonly outline: Outline;
  readonly code: string;
  /** The servers live on the store now, this one (`self`) among them. */
  readonly live: () => Promise<ProcessInfo[]>;
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** What servers sharing a database must agree on, part by part. */
export function deploymentOutline(
  schema: Schema | null,
  crons: ReadonlyMap<string, CronSpec>,
  functions: readonly FunctionInfo[],
): Outline {
  const tables: Record<string, string> = {};
  const indexes: Record<string, string> = {};
  for (const table of schema?.tables.values() ?? []) {
    tables[table.name] = hash(table.documentType);
    for (const index of table.indexes) indexes[`${table.name}.${index.name}`] = hash(index.fields);
  }
  const byPath: Record<string, string> = {};
  for (const info of functions) {
    if (info.module.startsWith('_system/')) continue;
    byPath[info.path] = hash([info.kind, info.visibility, info.args, info.returns]);
  }
  return {
    validation: schema?.schemaValidation ?? null,
    tables: sortedKeys(tables),
    indexes: sortedKeys(indexes),
    crons: hash(
      [...crons.values()].map((cron) => [cron.name, cron.schedule, cron.args]).sort(byFirst),
    ),
    functions: sortedKeys(byPath),
  };
}

/** A hash of the whole outline: servers of one shape agree on everything. */
export function deploymentShape(outline: Outline): string {
  return hash(outline);
}

/**
 * Whether a server of outline `newer` may run beside one of `older`: it has every table and
 * index of `older` unchanged and the same validation. (Functions are free to differ: their
 * jobs go to the servers that run them as enqueued, fleet-view.ts; and so are crons:
 * cron-rollout.ts.)
 */
export function extendsOutline(newer: Outline, older: Outline): boolean {
  const within = (
    ours: Readonly<Record<string, string>>,
    theirs: Readonly<Record<string, string>>,
  ) => Object.entries(theirs).every(([key, value]) => ours[key] === value);
  return (
    newer.validation === older.validation &&
    within(newer.tables, older.tables) &&
    within(newer.indexes, older.indexes)
  );
}

function sortedKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(byFirst));
}

function byFirst(a: readonly unknown[], b: readonly unknown[]): number {
  return String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0;
}

/**
 * Refuses (LoadError) while a live server of another shape is recorded; otherwise records this
 * server and forgets the gone ones. Runs in the transaction that applies the schema, so two
 * servers of different shapes starting at once conflict, and the one that runs again sees the
 * other.
 */
export async function checkFleet(
  tx: WriteTransaction,
  member: FleetMember,
  now: () => number,
): Promise<void> {
  const live = await member.live();
  const self = live.find((server) => server.self);
  // Not listed (a store that cannot tell its sessions apart): nothing can be compared.
  if (self === undefined) return;
  const byId = new Map(live.map((server) => [server.id, server]));
  const others: string[] = [];
  let own: ServerRecord | null = null;
  for (const record of await serverRecords(tx)) {
    const server = byId.get(record.process);
    if (record.process === self.id) own = record;
    else if (server === undefined) await tx.delete(SERVERS, record._id);
    else if (record.shape === member.shape) continue;
    else if (record.outline === undefined || !extendsOutline(member.outline, record.outline)) {
      others.push(describe(server, record));
    }
  }
  if (others.length > 0) {
    throw new LoadError(
      `Other servers on this database run a schema that this server's code does not keep unchanged (${others.join('; ')}): stop them before starting this one. A server may start beside others when it keeps their tables (with their validators) and indexes, adding tables and indexes and changing functions and crons as it likes; deploy any other change by stopping the old servers first`,
    );
  }
  const record = {
    process: self.id,
    shape: member.shape,
    outline: member.outline,
    code: member.code,
  };
  if (own === null) {
    await tx.insert(SERVERS, {
      _id: newDocumentId(SYSTEM_TABLES[SERVERS].number),
      _creationTime: now(),
      ...record,
    });
  } else if (own.shape !== record.shape || own.code !== record.code || own.outline === undefined) {
    await tx.replace(SERVERS, { ...own, ...record });
  }
}

/** Whether a commit wrote servers' records (a server started or reloaded). */
export function writesServers(store: Store, commit: Commit): boolean {
  const index = store.catalog().index(SERVERS, 'by_id');
  return commit.writesUnknown === true || commit.writes.some((w) => w.indexId === index?.id);
}

/** Every server's record (none before `_servers` exists). */
export async function serverRecords(tx: ReadTransaction): Promise<ServerRecord[]> {
  if (tx.catalog().table(SERVERS) === undefined) return [];
  const entries = await tx.scan({ table: SERVERS, index: 'by_id', order: 'asc', limit: 10_000 });
  return entries.map((entry) => entry.document as ServerRecord);
}

function describe(server: ProcessInfo, record: ServerRecord): string {
  const started = new Date(server.startedAt).toISOString();
  return `pid ${server.pid} on ${server.host}, started ${started}, code ${record.code}`;
}
