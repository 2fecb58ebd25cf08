/**
 * The commit feed: how every Sleigh process on one database learns of every commit, in
 * timestamp order, including the ones other processes made.
 *
 * Each commit NOTIFYs the store's channel inside its transaction, with its timestamp and, when
 * small, its write set. PostgreSQL delivers notifications in commit order, and commit order is
 * timestamp order (the commit lock), so one LISTEN connection hears every commit in order. A
 * notification too big to carry its writes says so, and the feed reads them from `commits`.
 * The feed never trusts notifications alone: after (re)connecting, and whenever someone waits
 * for a timestamp that is late, it reads `commits` after the last one it delivered, so a lost
 * notification only costs time. This process's own commits are delivered through the same
 * ordered path (it knows their writes already), so listeners see one sequence.
 *
 *   connecting ──LISTEN──▶ catching up (read commits > delivered) ──▶ following (notifications)
 *       ▲                                                                  │ connection lost
 *       ╰──────────────── backoff (polling commits meanwhile) ◀────────────╯
 *
 * Falling behind the commit log's retention (a long disconnection) cannot be caught up: the
 * feed then delivers one commit marked `writesUnknown`, and listeners assume everything changed.
 */
import { randomBytes } from 'node:crypto';
import type { Commit } from '@sleigh/storage';
import pg from 'pg';
import { fitName, quoteIdentifier } from './sql.js';
import * as sql from './statements.js';

/** Notification payloads are limited to 8000 bytes; bigger write sets are read from the table. */
const INLINE_WRITES = 7000;
/** Most commit records read at once while catching up. */
const CATCH_UP_BATCH = 1000;
/** How long a waiter trusts notifications before reading the table itself. */
const LATE_MS = 100;

export interface FeedHost {
  readonly connectionString: string;
  readonly connectTimeoutMs: number;
  readonly schema: string;
  /** The listening connection's name: how other processes see this one. */
  readonly applicationName: string;
  /** Connections for reading the commit log. */
  readonly pool: pg.Pool;
  /** Delivers one commit to the listeners (reloading the catalog first when it changed). */
  deliver(commit: Commit, local: boolean): Promise<void>;
  readonly log: (message: string) => void;
}

/**
 * The channel of a schema's commits. Channel names are identifiers, at most 63 bytes: two long
 * schema names alike in their first 56 characters must still have channels of their own.
 */
export function commitChannel(schema: string): string {
  return fitName(`sleigh_${schema}`, 63);
}

/** The text a commit notifies after its origin and timestamp: flags, then inline writes. */
export function notificationTail(catalogChanged: boolean, writes: Buffer): string {
  const flags = catalogChanged ? 'c' : '';
  const inline = writes.toString('base64');
  return inline.length <= INLINE_WRITES ? `${flags}:${inline}` : `${flags}f:`;
}

interface Heard {
  readonly ts: bigint;
  /** Null when the writes must be read from the table (or, for this process's, are coming). */
  readonly commit: Commit | null;
  /** Whether this process made the commit. */
  readonly own: boolean;
}

export class CommitFeed {
  /** Tells this process's notifications from others'. */
  readonly origin = randomBytes(6).toString('hex');
  readonly channel: string;
  /** The newest commit delivered to the listeners. */
  delivered: bigint;
  private readonly heard: Heard[] = [];
  /** This process's commits not yet delivered, by timestamp. */
  private readonly local = new Map<bigint, Commit>();
  /**
   * This process's commits recorded and not yet answered. The notification of one often
   * arrives before its COMMIT's answer (they come on different connections): the feed then
   * waits for the answer, which brings the writes, rather than read them from the table.
   */
  private recording = 0;
  private ownLateTimer: NodeJS.Timeout | null = null;
  /** The pump stopped at this process's own commit, for its answer. */
  private waitingForOwn = false;
  private waiters: Array<{ ts: bigint; done: (delivered: boolean) => void }> = [];
  private client: pg.Client | null = null;
  private pumping = false;
  private catchUpAsked = false;
  private lateTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private backoffMs = 100;
  private closed = false;
  private lostLogged = false;

  constructor(
    private readonly host: FeedHost,
    startTs: bigint,
  ) {
    this.channel = commitChannel(host.schema);
    this.delivered = startTs;
  }

  /** Connects and LISTENs; the store opens only once the feed is live. */
  async start(): Promise<void> {
    await this.connect();
  }

  /** This process is sending a commit record; `committed` or `notCommitted` follows. */
  recordingCommit(): void {
    this.recording++;
  }

  /** This process committed: the feed delivers it in its turn, with the writes it already has. */
  committed(commit: Commit): void {
    this.recording--;
    if (commit.ts <= this.delivered) return;
    this.local.set(commit.ts, commit);
    // When not connected nothing will be heard: read the table instead.
    if (this.client === null) this.askCatchUp();
    else if (this.heard.length > 0) this.pump();
  }

  /**
   * A commit this process was recording failed, or its outcome is unknown (the connection went
   * during COMMIT): a notification of it, if it committed, is read from the table.
   */
  notCommitted(): void {
    this.recording--;
    if (this.heard.length > 0) this.pump();
  }

  whenDelivered(ts: bigint, timeoutMs: number): Promise<boolean> {
    if (ts <= this.delivered) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const waiter = {
        ts,
        done: (delivered: boolean) => {
          clearTimeout(timer);
          resolve(delivered);
        },
      };
      this.waiters.push(waiter);
      this.armLateTimer();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.lateTimer !== null) clearTimeout(this.lateTimer);
    if (this.ownLateTimer !== null) clearTimeout(this.ownLateTimer);
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    for (const waiter of this.waiters.splice(0)) waiter.done(false);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.host.connectionString,
      connectionTimeoutMillis: this.host.connectTimeoutMs,
      options: `-c search_path=${this.host.schema}`,
      application_name: this.host.applicationName,
    });
    client.on('notification', (message) => {
      if (message.channel === this.channel && client === this.client) this.hear(message.payload);
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, null));
    await client.connect();
    try {
      await client.query(`LISTEN ${quoteIdentifier(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.backoffMs = 100;
    if (this.lostLogged) this.host.log('commit feed: listening again');
    this.lostLogged = false;
    // Whatever committed before LISTEN took effect is in the table.
    this.askCatchUp();
  }

  private lost(client: pg.Client, error: Error | null): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    void client.end().catch(() => undefined);
    if (!this.lostLogged) {
      this.host.log(
        `commit feed: lost its PostgreSQL connection${error ? ` (${error.message})` : ''}; reconnecting`,
      );
      this.lostLogged = true;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== null) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      // Meanwhile the table still tells what committed (when the database is reachable).
      this.askCatchUp();
      this.connect().catch(() => {
        this.backoffMs = Math.min(this.backoffMs * 2, 5000);
        this.scheduleReconnect();
      });
    }, this.backoffMs);
    this.reconnectTimer.unref();
  }

  /** A notification: `origin:ts:flags:base64 writes`. */
  private hear(payload: string | undefined): void {
    const [origin, tsText, flags, inline] = (payload ?? '').split(':');
    if (origin === undefined || tsText === undefined || flags === undefined) return;
    let ts: bigint;
    try {
      ts = BigInt(tsText);
    } catch {
      return;
    }
    if (ts <= this.delivered) return;
    const own = origin === this.origin;
    const commit = own
      ? (this.local.get(ts) ?? null)
      : flags.includes('f')
        ? null
        : {
            ts,
            writes: decodeWrites(Buffer.from(inline ?? '', 'base64')),
            catalogChanged: flags.includes('c'),
          };
    this.heard.push({ ts, commit, own });
    this.pump();
  }

  private askCatchUp(): void {
    this.catchUpAsked = true;
    this.pump();
  }

  /** Delivers what was heard, in order; reads the table where a notification fell short. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    this.waitingForOwn = false;
    void (async () => {
      try {
        for (;;) {
          if (this.catchUpAsked) {
            this.catchUpAsked = false;
            await this.catchUp(null);
            continue;
          }
          const front = this.heard[0];
          if (front === undefined) break;
          if (front.ts <= this.delivered) {
            this.heard.shift();
            continue;
          }
          const commit = front.commit ?? this.local.get(front.ts) ?? null;
          if (commit !== null) {
            this.heard.shift();
            await this.deliver(commit);
          } else if (front.own && this.recording > 0) {
            // Its answer is on the way (committed() pumps again); the table, if it is not.
            this.waitingForOwn = true;
            this.armOwnLateTimer();
            break;
          } else {
            await this.catchUp(this.heard[this.heard.length - 1]!.ts);
          }
        }
      } catch (error) {
        if (!this.closed) {
          this.host.log(`commit feed: reading the commit log failed: ${(error as Error).message}`);
          // Try again shortly: the database may be restarting.
          setTimeout(() => this.askCatchUp(), 500).unref();
        }
      } finally {
        this.pumping = false;
      }
      if (!this.closed && (this.catchUpAsked || (this.heard.length > 0 && !this.waitingForOwn)))
        this.pump();
    })();
  }

  /** Reads and delivers the commits after the last delivered (up to `upTo`, when given). */
  private async catchUp(upTo: bigint | null): Promise<void> {
    for (;;) {
      const from = this.delivered;
      // The row of the last delivered commit comes first, unless it was trimmed: then commits
      // between it and the first row may have been trimmed too, and their writes are unknown.
      const { rows } = await this.host.pool.query<{
        ts: string;
        catalog_changed: boolean;
        writes: Buffer;
      }>(sql.READ_COMMITS([from.toString(), upTo?.toString() ?? null, CATCH_UP_BATCH + 1]));
      if (this.closed || this.delivered !== from) return;
      let start = 0;
      if (rows[0] !== undefined && BigInt(rows[0].ts) === from) start = 1;
      else if (rows[0] !== undefined) {
        this.host.log(
          'commit feed: fell behind the commit log (trimmed); telling listeners everything may have changed',
        );
        await this.deliver({
          ts: BigInt(rows[0].ts) - 1n,
          writes: [],
          catalogChanged: true,
          writesUnknown: true,
        });
      }
      for (const row of rows.slice(start)) {
        const ts = BigInt(row.ts);
        await this.deliver(
          this.local.get(ts) ?? {
            ts,
            writes: decodeWrites(row.writes),
            catalogChanged: row.catalog_changed,
          },
        );
      }
      if (rows.length <= CATCH_UP_BATCH) return;
    }
  }

  private async deliver(commit: Commit): Promise<void> {
    if (commit.ts <= this.delivered) return;
    const local = this.local.has(commit.ts);
    for (const ts of this.local.keys()) if (ts <= commit.ts) this.local.delete(ts);
    await this.host.deliver(commit, local);
    this.delivered = commit.ts;
    if (this.waiters.length > 0) {
      const waiting: typeof this.waiters = [];
      for (const waiter of this.waiters) {
        if (waiter.ts <= commit.ts) waiter.done(true);
        else waiting.push(waiter);
      }
      this.waiters = waiting;
    }
  }

  /** Waiting for the answer of this process's own commit: not for long, then read the table. */
  private armOwnLateTimer(): void {
    if (this.ownLateTimer !== null) return;
    const waitingFor = this.heard[0];
    this.ownLateTimer = setTimeout(() => {
      this.ownLateTimer = null;
      if (!this.waitingForOwn) return;
      if (this.heard[0] === waitingFor) this.askCatchUp();
      else this.armOwnLateTimer();
    }, LATE_MS);
    this.ownLateTimer.unref();
  }

  /** Someone waits for a timestamp: if notifications do not bring it soon, read the table. */
  private armLateTimer(): void {
    if (this.lateTimer !== null) return;
    this.lateTimer = setTimeout(() => {
      this.lateTimer = null;
      if (this.waiters.length === 0) return;
      this.askCatchUp();
      this.armLateTimer();
    }, LATE_MS);
    this.lateTimer.unref();
  }
}

export function decodeWrites(bytes: Buffer): Commit['writes'] {
  const writes: Array<Commit['writes'][number]> = [];
  let at = 0;
  while (at < bytes.length) {
    const indexId = bytes.readUInt32BE(at);
    const length = bytes.readUInt32BE(at + 4);
    writes.push({ indexId, key: bytes.subarray(at + 8, at + 8 + length) });
    at += 8 + length;
  }
  return writes;
}
