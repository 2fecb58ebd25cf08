/**
 * Reactive subscriptions: the queries clients subscribe to, kept up to date after commits.
 *
 * Identical subscriptions (same function, arguments and identity) share one entry, so a
 * thousand clients on one query cost one re-run. Each entry knows the snapshot it was computed
 * at and what it read. A commit that wrote inside an entry's read set after that snapshot makes
 * it stale; an update cycle re-runs stale entries together on one snapshot and then lets the
 * sessions send what changed, each in one Transition whose results are all valid at one
 * timestamp.
 *
 *   entry:  new ──run──▶ fresh ──commit writes in its read set──▶ stale ──run──▶ fresh …
 *   cycle:  idle ──commit / subscription──▶ scheduled ──▶ running (re-run stale entries on one
 *           snapshot; repeat while any are stale) ──▶ flush sessions ──▶ idle
 *
 * A commit that lands while an entry re-runs may hit its new read set: recent commits are kept
 * and every new result is checked against the ones after its snapshot.
 *
 * `ts` only moves with delivered commits. On a shared database a re-run may read a snapshot
 * newer than the commits this server has heard of; the cycle then waits for the store to
 * deliver up to that snapshot (checking every entry against those commits) before sending, so a
 * Transition never claims a timestamp whose commits it has not accounted for.
 */
import type { Engine, QueryOutcome, UserIdentity } from '@sleigh/engine';
import type { Commit } from '@sleigh/storage';
import type { JSONValue } from 'convex/values';

/** How a subscriber is identified to functions: no identity, the admin, or a user. */
export interface Identity {
  readonly key: string;
  readonly admin: boolean;
  readonly user: UserIdentity | null;
}

export const ANONYMOUS: Identity = { key: 'none', admin: false, user: null };

/** Something that subscribes to entries and sends their changes (a sync session). */
export interface Subscriber {
  /**
   * Sends what changed; all entries are fresh at `ts`. Returns the timestamp it still waits for
   * (a mutation of its own that this server has not heard of yet), or null.
   */
  flush(ts: bigint): bigint | null;
}

export class QueryEntry {
  readonly subscribers = new Set<Subscriber>();
  outcome: QueryOutcome | null = null;
  /** Bumped when the result (value or error) changes, so sessions send only changes. */
  version = 0;
  private fingerprint = '';
  snapshot = -1n;
  invalidatedAt = -1n;
  /** Re-run whatever the commits say (new code; a figure kept in memory moved). */
  forced = false;

  constructor(
    readonly key: string,
    readonly path: string,
    readonly args: JSONValue,
    readonly identity: Identity,
    /** The query's journal: each run gets the last one (a paginated page keeps its end). */
    public journal: string | null,
  ) {}

  get stale(): boolean {
    return this.outcome === null || this.forced || this.invalidatedAt > this.snapshot;
  }

  /** Stores a new outcome; returns true when the result differs from the previous one. */
  update(outcome: QueryOutcome, snapshot: bigint): boolean {
    this.outcome = outcome;
    // A failed run keeps the journal it was given: the next run pins the same page.
    if (outcome.ok) this.journal = outcome.journal ?? null;
    this.forced = false;
    this.snapshot = snapshot;
    const fingerprint = outcome.ok
      ? `ok:${outcome.json}`
      : `error:${outcome.error.message}:${JSON.stringify(outcome.error.data ?? null)}`;
    if (fingerprint === this.fingerprint) return false;
    this.fingerprint = fingerprint;
    this.version++;
    return true;
  }
}

/** Commits kept to check results computed while they landed. */
const RECENT_COMMITS = 20_000;
/** Most entries re-run on one snapshot. */
const BATCH = 256;

export class Subscriptions {
  private readonly entries = new Map<string, QueryEntry>();
  /** The entries of Sleigh's own `_system/` functions (the dashboard's). */
  private readonly systemEntries = new Set<QueryEntry>();
  private readonly dirty = new Set<Subscriber>();
  /** Subscribers waiting for commits up to a timestamp before they can send. */
  private readonly held = new Map<Subscriber, bigint>();
  /** The newest snapshot a re-run read: a flush waits until commits up to it are delivered. */
  private ahead: bigint;
  private recent: Commit[] = [];
  /** Commits up to this timestamp are no longer (or were never) in `recent`. */
  private forgottenThrough: bigint;
  private scheduled = false;
  private running = false;
  private again = false;
  private closed = false;
  /** The newest commit timestamp processed; every fresh entry is valid at `ts`. */
  ts: bigint;
  /** Query runs done for subscriptions (tests count re-runs with it). */
  runs = 0;
  /** Resolves waiters when the cycle is idle (tests and `settled()`). */
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly engine: Engine,
    initialTs: bigint,
    private readonly onError: (error: unknown) => void,
  ) {
    this.ts = initialTs;
    this.ahead = initialTs;
    this.forgottenThrough = initialTs;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Query subscriptions of all clients (identical ones counted once per client). */
  get subscriptionCount(): number {
    let count = 0;
    for (const entry of this.entries.values()) count += entry.subscribers.size;
    return count;
  }

  /**
   * Re-runs the subscriptions to Sleigh's own functions whose path starts with one of
   * `prefixes`: those that read figures kept in memory (logs, rates), which no commit announces.
   */
  invalidatePaths(prefixes: readonly string[]): void {
    let any = false;
    for (const entry of this.systemEntries) {
      if (!prefixes.some((prefix) => entry.path.startsWith(prefix))) continue;
      entry.forced = true;
      any = true;
    }
    if (any) this.schedule();
  }

  subscribe(
    subscriber: Subscriber,
    path: string,
    args: JSONValue,
    identity: Identity,
    journal: string | null = null,
  ): QueryEntry {
    // A client resubscribing with a journal (after a reconnect) wants its own pinned page.
    const key = `${identity.key}\u0000${path}\u0000${JSON.stringify(args)}\u0000${journal ?? ''}`;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = new QueryEntry(key, path, args, identity, journal);
      this.entries.set(key, entry);
      if (path.startsWith('_system/')) this.systemEntries.add(entry);
    }
    entry.subscribers.add(subscriber);
    this.markDirty(subscriber);
    return entry;
  }

  unsubscribe(subscriber: Subscriber, entry: QueryEntry): void {
    entry.subscribers.delete(subscriber);
    if (entry.subscribers.size === 0 && this.entries.get(entry.key) === entry) {
      this.entries.delete(entry.key);
      this.systemEntries.delete(entry);
    }
  }

  /** A subscriber has something to send (a new query set, a mutation to acknowledge). */
  markDirty(subscriber: Subscriber): void {
    this.dirty.add(subscriber);
    this.schedule();
  }

  forget(subscriber: Subscriber): void {
    this.dirty.delete(subscriber);
    this.held.delete(subscriber);
  }

  onCommit(commit: Commit): void {
    if (commit.ts > this.ts) this.ts = commit.ts;
    this.recent.push(commit);
    if (this.recent.length > RECENT_COMMITS * 2) {
      const dropped = this.recent.length - RECENT_COMMITS;
      this.forgottenThrough = this.recent[dropped - 1]!.ts;
      this.recent = this.recent.slice(dropped);
    }
    for (const [subscriber, ts] of this.held) {
      if (ts > this.ts) continue;
      this.held.delete(subscriber);
      this.dirty.add(subscriber);
    }
    for (const entry of this.entries.values()) {
      if (entry.outcome === null || commit.ts <= entry.snapshot) continue;
      if (commit.writesUnknown === true || entry.outcome.readSet.invalidatedBy(commit)) {
        if (commit.ts > entry.invalidatedAt) entry.invalidatedAt = commit.ts;
      }
    }
    this.schedule();
  }

  /**
   * Whether commits after `ts` may have changed `outcome` (for reads at an older timestamp).
   * Null when the commits kept do not reach back to `ts`.
   */
  changedSince(outcome: QueryOutcome, ts: bigint): boolean | null {
    if (ts < this.forgottenThrough) return null;
    return this.recent.some(
      (commit) =>
        commit.ts > ts && (commit.writesUnknown === true || outcome.readSet.invalidatedBy(commit)),
    );
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.cycle();
    });
  }

  private async cycle(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        this.again = false;
        const stale = [...this.entries.values()].filter((entry) => entry.stale);
        if (stale.length === 0) {
          if (this.ahead <= this.ts) break;
          // Hear of every commit up to the newest snapshot read, then check entries again.
          if (!(await this.engine.store.whenDelivered(this.ahead))) {
            throw new Error('this server has not heard of recent commits yet');
          }
          continue;
        }
        for (let i = 0; i < stale.length; i += BATCH) await this.rerun(stale.slice(i, i + BATCH));
      }
      const dirty = [...this.dirty];
      this.dirty.clear();
      for (const subscriber of dirty) {
        const waiting = subscriber.flush(this.ts);
        if (waiting !== null) this.held.set(subscriber, waiting);
      }
    } catch (error) {
      this.onError(error);
      // The store failed (a lost database connection): try again shortly.
      setTimeout(() => this.schedule(), 1000).unref();
    } finally {
      this.running = false;
    }
    if (this.again || this.dirty.size > 0) {
      this.schedule();
    } else {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private async rerun(entries: QueryEntry[]): Promise<void> {
    const { ts, outcomes } = await this.engine.queryBatch(
      entries.map((entry) => ({
        path: entry.path,
        args: entry.args,
        options: {
          caller: entry.identity.admin ? ('admin' as const) : ('client' as const),
          identity: entry.identity.user,
          journal: entry.journal,
        },
      })),
    );
    this.runs += entries.length;
    if (ts > this.ahead) this.ahead = ts;
    entries.forEach((entry, i) => {
      const outcome = outcomes[i]!;
      if (entry.update(outcome, ts)) {
        for (const subscriber of entry.subscribers) this.dirty.add(subscriber);
      }
      // Commits that landed while it ran may have written inside its new read set.
      for (let j = this.recent.length - 1; j >= 0; j--) {
        const commit = this.recent[j]!;
        if (commit.ts <= ts) break;
        const hit = commit.writesUnknown === true || outcome.readSet.invalidatedBy(commit);
        if (hit && commit.ts > entry.invalidatedAt) {
          entry.invalidatedAt = commit.ts;
        }
      }
    });
  }

  /** New code: every entry re-runs. */
  invalidateAll(): void {
    for (const entry of this.entries.values()) entry.forced = true;
    this.schedule();
  }

  /** Resolves once no update is pending. */
  settled(): Promise<void> {
    if (!this.running && !this.scheduled && this.dirty.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }
}
