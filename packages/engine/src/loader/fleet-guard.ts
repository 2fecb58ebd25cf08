/**
 * What keeps servers with incompatible code off one database. A server that starts (or reloads)
 * applies its schema and crons, and runs any job whose function it has: two versions whose
 * schemas differ would drop each other's indexes, and one version would fail the other's jobs.
 * So every server records the *shape* of its deployment in `_servers`: a hash of its schema,
 * crons and functions (paths, kinds, validators), not of their bodies. In the transaction that
 * applies its schema, a server refuses to go on while a live server of another shape is
 * recorded, and removes the records of servers that are gone.
 *
 * Servers whose code differs only inside function bodies have one shape, so such a change can
 * be deployed server by server; any other change needs the old servers stopped first.
 *
 *   start ──read _servers──▶ a live server of another shape? ──yes──▶ refuse (LoadError)
 *                                      │ no
 *                                      ▼
 *            delete the records of gone servers, write this one's ──▶ apply the schema
 */
import { createHash } from 'node:crypto';
import {
  newDocumentId,
  type Document,
  type ProcessInfo,
  type WriteTransaction,
} from '@sleigh/storage';
import type { CronSpec } from '../jobs/crons.js';
import { LoadError } from './bundle.js';
import type { FunctionInfo } from './registry.js';
import { SYSTEM_TABLES, type Schema } from './schema.js';

export const SERVERS = '_servers';

interface ServerRecord extends Document {
  /** The store's id of the server's process (`ProcessInfo.id`). */
  process: string;
  /** Its deployment's shape (`deploymentShape`). */
  shape: string;
  /** The hash of its sources, for operators telling versions apart. */
  code: string;
}

/** This server, as the guard sees it. */
export interface FleetMember {
  readonly shape: string;
  readonly code: string;
  /** The servers live on the store now, this one (`self`) among them. */
  readonly live: () => Promise<ProcessInfo[]>;
}

/** A hash of what servers sharing a database must agree on. */
export function deploymentShape(
  schema: Schema | null,
  crons: ReadonlyMap<string, CronSpec>,
  functions: readonly FunctionInfo[],
): string {
  const shape = {
    schema:
      schema === null
        ? null
        : {
            validation: schema.schemaValidation,
            tables: [...schema.tables.values()]
              .map((table) => [table.name, table.indexes, table.documentType])
              .sort(byFirst),
          },
    crons: [...crons.values()].map((cron) => [cron.name, cron.schedule, cron.args]).sort(byFirst),
    functions: functions
      .filter((info) => !info.module.startsWith('_system/'))
      .map((info) => [info.path, info.kind, info.visibility, info.args, info.returns])
      .sort(byFirst),
  };
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
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
  const entries = await tx.scan({ table: SERVERS, index: 'by_id', order: 'asc', limit: 10_000 });
  const others: string[] = [];
  let own: ServerRecord | null = null;
  for (const { document } of entries) {
    const record = document as ServerRecord;
    const server = byId.get(record.process);
    if (record.process === self.id) own = record;
    else if (server === undefined) await tx.delete(SERVERS, record._id);
    else if (record.shape !== member.shape) others.push(describe(server, record));
  }
  if (others.length > 0) {
    throw new LoadError(
      `Other servers on this database run a different schema, crons or set of functions (${others.join('; ')}): stop them before starting this one. Servers may differ only in function bodies; deploy any other change by stopping the old servers first`,
    );
  }
  const record = { process: self.id, shape: member.shape, code: member.code };
  if (own === null) {
    await tx.insert(SERVERS, {
      _id: newDocumentId(SYSTEM_TABLES[SERVERS].number),
      _creationTime: now(),
      ...record,
    });
  } else if (own.shape !== record.shape || own.code !== record.code) {
    await tx.replace(SERVERS, { ...own, ...record });
  }
}

function describe(server: ProcessInfo, record: ServerRecord): string {
  const started = new Date(server.startedAt).toISOString();
  return `pid ${server.pid} on ${server.host}, started ${started}, code ${record.code}`;
}
