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
 * more rarely. A role that may not vacuum the table (PostgreSQL would only warn and skip it) is
 * told so once, and the work is left to autovacuum; a vacuum that fails (the database went away,
 * say) is tried again after a minute.
 *
 *   counting ──keys ≥ afterKeys──▶ due ──gap passed──▶ vacuuming ──done──▶ counting
 *       ▲                                                  │  │                 │
 *       │                                                  │  ╰─failed: gap = 1 min
 *       ╰──────────── gap = max(1 s, 9 × its duration) ────┼────────────────────╯
 *                                                          ╰─not allowed──▶ stopped
 */

/** The least time between two vacuums. */
const MIN_GAP_MS = 1000;
/** The next vacuum waits this many times as long as the last one took. */
const GAP_FACTOR = 9;
/** How long after a failed vacuum the next may start. */
const RETRY_GAP_MS = 60_000;

export class ChurnVacuum {
  private written = 0;
  private running: Promise<void> | null = null;
  private notBefore = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  /** `vacuum` resolves false, having done nothing, when the role may not vacuum the table. */
  constructor(
    private readonly vacuum: () => Promise<boolean>,
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
      (allowed) => {
        this.running = null;
        if (!allowed) {
          this.stopped = true;
          this.log(
            'not vacuuming the index table after heavy churn: this role does not own it; leaving it to autovacuum',
          );
          return;
        }
        this.notBefore = Date.now() + Math.max(MIN_GAP_MS, GAP_FACTOR * (Date.now() - started));
        this.consider();
      },
      (error: unknown) => {
        this.running = null;
        this.notBefore = Date.now() + RETRY_GAP_MS;
        this.log(
          `vacuuming the index table after heavy churn failed (${(error as Error).message}); trying again in a minute`,
        );
        this.consider();
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
