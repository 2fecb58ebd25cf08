/**
 * The execution log: this process's recent function executions, newest last, for the
 * dashboard's Logs page. It lives in memory (a ring of the last `capacity` executions), so
 * logging costs the hot path one array write and no database write; each server of a fleet
 * keeps its own. Sleigh's own `_system/` functions are left out (the dashboard reading the log
 * must not fill it).
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
  private readonly ring: Array<ExecutionRecord | undefined>;
  private next = 0;
  private count = 0;

  /** Executions recorded since start. */
  get total(): number {
    return this.count;
  }
  private readonly listeners = new Set<() => void>();

  constructor(readonly capacity = 1000) {
    this.ring = new Array<ExecutionRecord | undefined>(capacity);
  }

  /** Executions since start by `kind outcome` (the metrics' counters). */
  readonly totals = new Map<string, number>();

  record(entry: Omit<ExecutionRecord, 'id'>): void {
    if (entry.path.startsWith('_system/')) return;
    this.count++;
    const key = `${entry.kind} ${entry.outcome}`;
    this.totals.set(key, (this.totals.get(key) ?? 0) + 1);
    this.ring[this.next] = { id: this.count.toString(36), ...entry };
    this.next = (this.next + 1) % this.capacity;
    for (const listener of this.listeners) listener();
  }

  /** Newest first, filtered. */
  recent(filter: ExecutionFilter = {}): ExecutionRecord[] {
    const limit = Math.max(0, Math.min(filter.limit ?? 200, this.capacity));
    const out: ExecutionRecord[] = [];
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const entry = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (entry === undefined) break;
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
