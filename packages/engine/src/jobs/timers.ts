/**
 * Node's `setTimeout` waits at most 2^31 - 1 ms (about 24.8 days): asked for longer, it warns
 * and fires after 1 ms, so a runner waiting for a job a month away would wake a thousand times
 * a second. Runners wait at most this long instead, and when the timer fires early they look
 * again and wait for what is left.
 */
export const LONGEST_WAIT_MS = 2 ** 31 - 1;

/** How long a timer should wait from `now` for `at`: not below 0, not beyond what it can wait. */
export function delayUntil(at: number, now = Date.now()): number {
  return Math.min(LONGEST_WAIT_MS, Math.max(0, at - now));
}

/** How far from now a run may be scheduled, either way: Convex's own limit. */
export const SCHEDULE_LIMIT_MS = 5 * 365 * 24 * 60 * 60 * 1000;

/**
 * `at` (ms since the epoch) said with how far off it is, when it is too far off to schedule a
 * run for (`past`: also too long ago); null when it is not.
 */
export function tooFarOff(at: number, now = Date.now(), past = true): string | null {
  if (at - now > SCHEDULE_LIMIT_MS) return `${describeTime(at)} (more than 5 years away)`;
  if (past && now - at > SCHEDULE_LIMIT_MS) return `${describeTime(at)} (more than 5 years ago)`;
  return null;
}

function describeTime(at: number): string {
  // Dates end at ±8.64e15 ms; beyond them, say the number.
  return Math.abs(at) <= 8.64e15 ? new Date(at).toISOString() : `${at} ms since 1970`;
}
