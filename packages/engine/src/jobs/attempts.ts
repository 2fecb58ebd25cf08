/**
 * The pool job attempts running in this process, as their own code sees them: an abort signal
 * (fired when the attempt times out, misses its heartbeat or its job is canceled, so a long
 * action can stop) and a heartbeat (which keeps an attempt of a pool with `heartbeatTimeoutMs`
 * alive).
 *
 *   started ──heartbeat──▶ started (deadline moves on)
 *      ├──timeout / no heartbeat in time──▶ aborted (the runner records a failed attempt)
 *      ├──its job canceled──▶ signal fired (its slot is free once the function returns)
 *      └──the function returned──▶ ended
 *
 * An attempt runs in the process whose runner claimed it, so all of this is in memory; a
 * process that dies loses its attempts, and their leases bring them back elsewhere.
 */
import { delayUntil } from './timers.js';

export interface RunningAttempt {
  /** The job's run this attempt belongs to (a canceled job may be run again). */
  readonly run: number;
  readonly controller: AbortController;
  /** Null when the pool asks for no heartbeats. */
  readonly heartbeatMs: number | null;
  deadline: number;
  readonly ended: Promise<void>;
  end(): void;
}

export class RunningAttempts {
  private readonly byJob = new Map<string, RunningAttempt>();

  private start(jobId: string, run: number, heartbeatMs: number | null): RunningAttempt {
    const controller = new AbortController();
    let end: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const attempt: RunningAttempt = {
      run,
      controller,
      heartbeatMs,
      deadline: heartbeatMs === null ? Infinity : Date.now() + heartbeatMs,
      ended,
      end: () => {
        if (this.byJob.get(jobId) === attempt) this.byJob.delete(jobId);
        end();
      },
    };
    this.byJob.set(jobId, attempt);
    return attempt;
  }

  /**
   * Runs an attempt of the job within its limits (`run` starts it once it is registered here).
   * It is given up when it runs longer than `timeoutMs` or goes `heartbeatMs` without a beat:
   * its code's abort signal fires, and this resolves with `givenUp(why)` without waiting for it.
   */
  async run<T>(
    jobId: string,
    limits: { run: number; timeoutMs: number | null; heartbeatMs: number | null },
    run: () => Promise<T>,
    givenUp: (why: string) => T,
  ): Promise<T> {
    const { timeoutMs, heartbeatMs } = limits;
    const attempt = this.start(jobId, limits.run, heartbeatMs);
    const timers: NodeJS.Timeout[] = [];
    try {
      const running = run();
      if (timeoutMs === null && heartbeatMs === null) return await running;
      const stopped = new Promise<T>((resolve) => {
        const giveUp = (why: string) => {
          attempt.controller.abort(new Error(why));
          resolve(givenUp(why));
        };
        if (timeoutMs !== null) {
          const end = Date.now() + timeoutMs;
          const expire = () => {
            if (Date.now() >= end) giveUp(`timed out after ${timeoutMs} ms`);
            else timers.push(setTimeout(expire, delayUntil(end)));
          };
          timers.push(setTimeout(expire, delayUntil(end)));
        }
        if (heartbeatMs !== null) {
          const watch = () => {
            if (Date.now() >= attempt.deadline) giveUp(`no heartbeat for ${heartbeatMs} ms`);
            else timers.push(setTimeout(watch, delayUntil(attempt.deadline)));
          };
          timers.push(setTimeout(watch, delayUntil(attempt.deadline)));
        }
      });
      return await Promise.race([running, stopped]);
    } finally {
      for (const timer of timers) clearTimeout(timer);
      attempt.end();
    }
  }

  /**
   * Fires the abort signal of the job's attempt running here, when it belongs to `run` (its job
   * was canceled, say); the attempt goes on until its function returns. False when none did.
   */
  abort(jobId: string, run: number, why: string): boolean {
    const attempt = this.byJob.get(jobId);
    if (attempt === undefined || attempt.run !== run || attempt.controller.signal.aborted) {
      return false;
    }
    attempt.controller.abort(new Error(why));
    return true;
  }

  /** The jobs with an attempt running here, each with the run it belongs to. */
  running(): Array<{ jobId: string; run: number }> {
    return [...this.byJob].map(([jobId, attempt]) => ({ jobId, run: attempt.run }));
  }

  /** A heartbeat from the job's code: false when the attempt is no longer running here. */
  beat(jobId: string): boolean {
    const attempt = this.byJob.get(jobId);
    if (attempt === undefined || attempt.controller.signal.aborted) return false;
    if (attempt.heartbeatMs !== null) attempt.deadline = Date.now() + attempt.heartbeatMs;
    return true;
  }

  /** Resolves with why the attempt was aborted, or null once it ended normally. */
  async whenAborted(jobId: string): Promise<string | null> {
    const attempt = this.byJob.get(jobId);
    if (attempt === undefined) return null;
    const signal = attempt.controller.signal;
    if (signal.aborted) return reasonOf(signal);
    return Promise.race([
      new Promise<string>((resolve) =>
        signal.addEventListener('abort', () => resolve(reasonOf(signal)), { once: true }),
      ),
      attempt.ended.then(() => null),
    ]);
  }
}

function reasonOf(signal: AbortSignal): string {
  const reason = signal.reason as unknown;
  return reason instanceof Error ? reason.message : String(reason);
}
