/**
 * Per-pool throughput and latency over time, one bucket per second, as this process saw its
 * own runner start and end jobs (the dashboard's charts; each server of a fleet counts what it
 * ran). Latency is from when a job was due (enqueued, or its runAt / retry time) to its start.
 * Kept in memory for the last `keepSeconds`; a closed second's percentiles are computed once.
 */

export interface PoolSecond {
  /** The second's start, ms since the epoch. */
  readonly t: number;
  readonly started: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
}

/** Latency samples kept per second (reservoir-sampled past this). */
const SAMPLES = 2048;

class Bucket {
  started = 0;
  succeeded = 0;
  failed = 0;
  private readonly latencies: number[] = [];
  private summary: { p50: number | null; p99: number | null } | null = null;

  constructor(readonly t: number) {}

  addLatency(ms: number): void {
    this.started++;
    if (this.latencies.length < SAMPLES) this.latencies.push(ms);
    else {
      const slot = Math.floor(Math.random() * this.started);
      if (slot < SAMPLES) this.latencies[slot] = ms;
    }
  }

  view(closed: boolean): PoolSecond {
    let summary = this.summary;
    if (summary === null) {
      const sorted = [...this.latencies].sort((a, b) => a - b);
      const at = (q: number) =>
        sorted.length === 0
          ? null
          : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      summary = { p50: at(0.5), p99: at(0.99) };
      if (closed) this.summary = summary;
    }
    return {
      t: this.t,
      started: this.started,
      succeeded: this.succeeded,
      failed: this.failed,
      latencyP50Ms: summary.p50,
      latencyP99Ms: summary.p99,
    };
  }
}

export interface PoolTotals {
  started: number;
  succeeded: number;
  failed: number;
}

export class PoolStats {
  private readonly pools = new Map<string, Bucket[]>();
  /** Since start, per pool (the metrics' counters). */
  readonly totals = new Map<string, PoolTotals>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly keepSeconds = 600) {}

  started(pool: string, latencyMs: number, now = Date.now()): void {
    this.bucket(pool, now).addLatency(Math.max(0, latencyMs));
    this.totalsOf(pool).started++;
    this.changed();
  }

  ended(pool: string, ok: boolean, now = Date.now()): void {
    const bucket = this.bucket(pool, now);
    if (ok) bucket.succeeded++;
    else bucket.failed++;
    const totals = this.totalsOf(pool);
    if (ok) totals.succeeded++;
    else totals.failed++;
    this.changed();
  }

  /** The last `seconds` of `pool`, oldest first, one entry per second (quiet seconds as zeros). */
  series(pool: string, seconds: number, now = Date.now()): PoolSecond[] {
    const span = Math.max(1, Math.min(Math.floor(seconds), this.keepSeconds));
    const current = Math.floor(now / 1000) * 1000;
    const byT = new Map((this.pools.get(pool) ?? []).map((bucket) => [bucket.t, bucket]));
    const out: PoolSecond[] = [];
    for (let t = current - (span - 1) * 1000; t <= current; t += 1000) {
      const bucket = byT.get(t);
      out.push(
        bucket?.view(t < current) ?? {
          t,
          started: 0,
          succeeded: 0,
          failed: 0,
          latencyP50Ms: null,
          latencyP99Ms: null,
        },
      );
    }
    return out;
  }

  /** Called (at most once per event) when a count changed; returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private totalsOf(pool: string): PoolTotals {
    let totals = this.totals.get(pool);
    if (totals === undefined)
      this.totals.set(pool, (totals = { started: 0, succeeded: 0, failed: 0 }));
    return totals;
  }

  private bucket(pool: string, now: number): Bucket {
    const t = Math.floor(now / 1000) * 1000;
    let buckets = this.pools.get(pool);
    if (buckets === undefined) this.pools.set(pool, (buckets = []));
    const last = buckets[buckets.length - 1];
    // A late event (its second already closed) counts in the newest second.
    if (last !== undefined && last.t >= t) return last;
    const bucket = new Bucket(t);
    buckets.push(bucket);
    const oldest = t - this.keepSeconds * 1000;
    while (buckets.length > 0 && buckets[0]!.t <= oldest) buckets.shift();
    return bucket;
  }
}
