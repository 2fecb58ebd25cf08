/**
 * The execution log: this process's recent function executions, newest last, for the
 * dashboard's Logs page. It lives in memory (the last `capacity` executions, and no more than
 * `maxBytes` of their log lines and errors: a function may log 8 MiB a run, so a count alone
 * would let a chatty public function fill the heap), so logging costs the hot path no database
 * write; each server of a fleet keeps its own. Sleigh's own `_system/` functions are left out
 * (the dashboard reading the log must not fill it).
 */

/** Who ran it: a client, the scheduler (crons included) or a workpool. */
export type ExecutionSource = 'client' | 'scheduler' | 'pool';

export interface ExecutionRecord {
  readonly id: string;
  readonly startedAt: number;
  readonly durationMs: number;
  readonly path: string;
  readonly kind: 'query' | 'mutation' | 'action';
  readonly source: ExecutionSource;
  readonly outcome: 'success' | 'failure';
  readonly error: string | null;
  readonly logLines: readonly string[];
}

export interface ExecutionFilter {
  readonly function?: string | undefined;
  readonly outcome?: 'success' | 'failure' | undefined;
  readonly limit?: number | undefined;
}

export class ExecutionLog {
  /** Oldest first, from `first` on (the slots before it were evicted). */
  private entries: Array<ExecutionRecord | undefined> = [];
  private sizes: number[] = [];
  private first = 0;
  private bytes = 0;
  private count = 0;

  /** Executions recorded since start. */
  get total(): number {
    return this.count;
  }
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly capacity = 1000,
    readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  /** Executions since start by `kind outcome` (the metrics' counters). */
  readonly totals = new Map<string, number>();

  /** Bytes of log lines and errors held now (characters, as strings hold them). */
  get heldBytes(): number {
    return this.bytes;
  }

  record(entry: Omit<ExecutionRecord, 'id'>): void {
    if (entry.path.startsWith('_system/')) return;
    this.count++;
    const key = `${entry.kind} ${entry.outcome}`;
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    let size = entry.path.length + (entry.error?.length ?? 0);
    for (const line of entry.logLines) size += line.length;
    this.entries.push({ id: this.count.toString(36), ...entry });
    this.sizes.push(size);
    this.bytes += size;
    // The oldest go first, until both the count and the bytes fit (the newest always stays).
    while (
      this.entries.length - this.first > 1 &&
      (this.entries.length - this.first > this.capacity || this.bytes > this.maxBytes)
    ) {
      this.bytes -= this.sizes[this.first]!;
      this.entries[this.first] = undefined;
      this.first++;
    }
    if (this.first >= this.capacity) {
      this.entries = this.entries.slice(this.first);
      this.sizes = this.sizes.slice(this.first);
      this.first = 0;
    }
    for (const listener of this.listeners) listener();
  }

  /** Newest first, filtered. */
  recent(filter: ExecutionFilter = {}): ExecutionRecord[] {
    const limit = Math.max(0, Math.min(filter.limit ?? 200, this.capacity));
    const out: ExecutionRecord[] = [];
    for (let i = this.entries.length - 1; i >= this.first && out.length < limit; i--) {
      const entry = this.entries[i]!;
      if (filter.function !== undefined && entry.path !== filter.function) continue;
      if (filter.outcome !== undefined && entry.outcome !== filter.outcome) continue;
      out.push(entry);
    }
    // Recorded as they end; listed by when they started.
    return out.sort((a, b) => b.startedAt - a.startedAt);
  }

  /** Called after each recorded execution; returns an unsubscribe. */
  onRecord(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
