/**
 * Vacuums the index table after heavy churn, sooner than autovacuum would.
 *
 * Why: a workpool job changes state by deleting one index entry and inserting another, so a
 * busy pool leaves a trail of dead entries in the key ranges that claims and counts scan (a
 * pool's pending and running jobs). A range scan walks every dead entry until VACUUM removes
 * them: after a burst of 20,000 jobs, an idle pool's two scans in an enqueue read about 800
 * pages instead of 6, and enqueue→start latency grows by about half a millisecond. Autovacuum
 * comes round only once a minute by default (autovacuum_naptime), and then only past its
 * thresholds.
 *
 * Policy: once this process's commits have written `afterKeys` index keys since the last
 * vacuum, vacuum in the background on a pooled connection: one at a time, skipping a table
 * someone else is vacuuming, and with a gap of at least nine times the last vacuum's duration
 * before the next, so it takes at most a tenth of one connection's time. A small database is
 * vacuumed every couple of seconds under load; a large one, where each vacuum takes longer,
 * more rarely. If PostgreSQL refuses (the role does not own the table), it says so once and
 * stops trying.
 *
 *   counting ──keys ≥ afterKeys──▶ due ──gap passed──▶ vacuuming ──done──▶ counting
 *       ▲                                                                     │
 *       ╰──────────────────── gap = max(1 s, 9 × its duration) ───────────────╯
 */

/** The least time between two vacuums. */
const MIN_GAP_MS = 1000;
/** The next vacuum waits this many times as long as the last one took. */
const GAP_FACTOR = 9;

export class ChurnVacuum {
  private written = 0;
  private running: Promise<void> | null = null;
  private notBefore = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly vacuum: () => Promise<void>,
    private readonly afterKeys: number,
    private readonly log: (message: string) => void,
  ) {}

  /** Counts the index keys a local commit wrote (removed or added). */
  wrote(keys: number): void {
    this.written += keys;
    this.consider();
  }

  private consider(): void {
    if (this.stopped || this.running !== null || this.written < this.afterKeys) return;
    const wait = this.notBefore - Date.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.consider();
      }, wait);
      this.timer.unref();
      return;
    }
    // Keys written while it runs count toward the next one.
    this.written = 0;
    const started = Date.now();
    this.running = this.vacuum().then(
      () => {
        this.running = null;
        this.notBefore = Date.now() + Math.max(MIN_GAP_MS, GAP_FACTOR * (Date.now() - started));
        this.consider();
      },
      (error: unknown) => {
        this.running = null;
        this.stopped = true;
        this.log(
          `vacuuming after heavy churn failed (${(error as Error).message}); leaving it to autovacuum`,
        );
      },
    );
  }

  /** Stops vacuuming; resolves once a vacuum in progress has finished. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.running;
  }
}
