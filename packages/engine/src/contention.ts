/**
 * Which mutations run their first attempt in the retry lane (one at a time in this process)
 * rather than at once.
 *
 * Retries always queue in the lane, so a hot document stops bouncing them. First attempts run
 * side by side, which is right for almost every function: but when most of a function's first
 * attempts write one hot document (a counter every event bumps, a queue's head), they mostly
 * lose the race to each other and run again anyway, and the work of the losers is wasted. So
 * the share of a function's side-by-side first attempts that conflicted is kept (a moving
 * average); when it reaches HOT_SHARE, that function's first attempts queue in the lane too,
 * for SERIAL_MS. Then they run side by side again, and their outcomes decide afresh, starting
 * from half the threshold so that one unlucky conflict does not send them back at once.
 *
 * A function that conflicts now and then never gets near the threshold: from none, it takes
 * eleven conflicts in a row, and a steady half of its first attempts conflicting.
 *
 *                share ≥ HOT_SHARE
 *   side by side ──────────────────▶ in the lane (first attempts wait their turn)
 *        ▲                                  │
 *        └──────── SERIAL_MS passed ────────┘  (share restarts at HOT_SHARE / 2)
 *
 * Measured on the Santa workshop on PostgreSQL, whose every mutation bumps one event counter:
 * see the engine's README ("Retries").
 */

/** The share of conflicting first attempts that sends a function's first attempts to the lane. */
export const HOT_SHARE = 0.5;
/** How long a hot function's first attempts queue before they are tried side by side again. */
export const SERIAL_MS = 2000;
/** Weight of each new outcome in the moving average (about the last 16 attempts count). */
const WEIGHT = 1 / 16;

interface FunctionContention {
  /** Moving average of side-by-side first attempts that conflicted (0..1). */
  share: number;
  /** Until when its first attempts queue in the lane (performance.now() ms), or 0. */
  serialUntil: number;
}

export class Contention {
  private readonly functions = new Map<string, FunctionContention>();

  /** Whether a first attempt of `path` starting now should queue in the retry lane. */
  serial(path: string, now = performance.now()): boolean {
    const entry = this.functions.get(path);
    if (entry === undefined || entry.serialUntil === 0) return false;
    if (now < entry.serialUntil) return true;
    entry.serialUntil = 0;
    entry.share = HOT_SHARE / 2;
    return false;
  }

  /**
   * Records how a first attempt that ran side by side ended: `conflicted` when it lost a race
   * and must run again. Attempts that ran in the lane say nothing about running side by side,
   * and are not recorded.
   */
  record(path: string, conflicted: boolean, now = performance.now()): void {
    let entry = this.functions.get(path);
    if (entry === undefined) {
      // Most functions never conflict: they need no entry.
      if (!conflicted) return;
      entry = { share: 0, serialUntil: 0 };
      this.functions.set(path, entry);
    }
    entry.share += WEIGHT * ((conflicted ? 1 : 0) - entry.share);
    if (entry.serialUntil === 0 && entry.share >= HOT_SHARE) entry.serialUntil = now + SERIAL_MS;
  }
}
