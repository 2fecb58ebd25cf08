/** How a runner's start deadlines for rate-limited claims adapt to how late its starts come. */
import { describe, expect, it } from 'vitest';
import { GUARD_MS, StartDeadlines, type Logged } from './pool-limits.js';

/** A claim logged at `at` by a runner that gives its jobs `withinMs` to start. */
const loggedAt = (at: number, withinMs = GUARD_MS): Logged => ({
  at,
  stamp: at + withinMs - GUARD_MS,
});

describe('StartDeadlines', () => {
  it('lets a job start by its deadline, once; a job it never heard of always', () => {
    const deadlines = new StartDeadlines();
    const claim = loggedAt(1000);
    deadlines.claimed(['a', 'b'], claim);
    expect(deadlines.missed('a', 1000 + GUARD_MS)).toBeNull();
    expect(deadlines.missed('b', 1001 + GUARD_MS)).toBe(claim);
    // Asked again (it was handed back and claimed anew without a deadline): no longer known.
    expect(deadlines.missed('b', 99_999)).toBeNull();
    expect(deadlines.missed('unknown', 99_999)).toBeNull();
  });

  it('gives later claims twice what a late start took, once per claim, then gives it back', () => {
    const deadlines = new StartDeadlines();
    const ids = Array.from({ length: 50 }, (_, i) => `job${i}`);
    deadlines.claimed(ids, loggedAt(0));
    // The whole claim started 300 ms after it was logged: every job misses, and the runner
    // allows 600 ms from now on, not 2^50 times as much.
    for (const id of ids) expect(deadlines.missed(id, 300)).not.toBeNull();
    expect(deadlines.withinMs).toBe(600);
    // Starts well within the deadline shrink it back towards GUARD_MS, never below.
    for (let i = 0; i < 1000; i++) {
      deadlines.claimed([`on-time${i}`], loggedAt(0, deadlines.withinMs));
      expect(deadlines.missed(`on-time${i}`, 1)).toBeNull();
    }
    expect(deadlines.withinMs).toBe(GUARD_MS);
  });

  it('forgets a job that will not start here', () => {
    const deadlines = new StartDeadlines();
    deadlines.claimed(['gone'], loggedAt(0));
    deadlines.forget('gone');
    expect(deadlines.missed('gone', 10_000)).toBeNull();
    expect(deadlines.withinMs).toBe(GUARD_MS);
  });
});
