/**
 * What this process knows about itself, for the dashboard's Health and Logs pages and the
 * Prometheus endpoint: the execution log, pool throughput, the commit rate, and figures that
 * live outside the engine (the server's subscriptions and connections) read through gauges.
 */
import { ExecutionLog } from './execution-log.js';
import { PoolStats } from './pool-stats.js';

/** Seconds of commit counts kept (the rate is over the last ten whole seconds). */
const RATE_WINDOW = 10;

export class Monitor {
  readonly executions = new ExecutionLog();
  readonly pools = new PoolStats();
  readonly startedAt = Date.now();
  /** Sleigh's version, as the server announces it. */
  version = 'unknown';
  /** Commits heard of since start (this process's and, on a shared database, the others'). */
  commits = 0;
  /** Mutation attempts here that lost a race to a concurrent transaction and ran again. */
  conflicts = 0;
  /** Mutations whose first attempt waited in the retry lane, their function being hot. */
  queuedFirstAttempts = 0;
  private readonly commitSeconds = new Map<number, number>();
  private readonly gauges = new Map<string, () => number>();

  commitHeard(now = Date.now()): void {
    this.commits++;
    const second = Math.floor(now / 1000);
    this.commitSeconds.set(second, (this.commitSeconds.get(second) ?? 0) + 1);
    if (this.commitSeconds.size > RATE_WINDOW * 2) {
      for (const key of this.commitSeconds.keys())
        if (key < second - RATE_WINDOW) this.commitSeconds.delete(key);
    }
  }

  /** Commits per second over the last ten whole seconds. */
  commitsPerSecond(now = Date.now()): number {
    const current = Math.floor(now / 1000);
    let sum = 0;
    for (let s = current - RATE_WINDOW; s < current; s++) sum += this.commitSeconds.get(s) ?? 0;
    return sum / RATE_WINDOW;
  }

  /** Registers a figure kept elsewhere (the server's subscription count, say). */
  gauge(name: string, read: () => number): void {
    this.gauges.set(name, read);
  }

  read(name: string): number {
    return this.gauges.get(name)?.() ?? 0;
  }
}
