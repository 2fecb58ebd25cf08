/** How a runner's start deadlines for rate-limited claims adapt to how late its starts come. */
import { describe, expect, it } from 'vitest';
import { GUARD_MS, StartDeadlines } from './pool-limits.js';

describe('StartDeadlines', () => {
  it('lets a job start by its deadline, once; a job it never heard of always', () => {
    const deadlines = new StartDeadlines();
    deadlines.claimed(['a', 'b'], { at: 1000, startBy: 1000 + GUARD_MS });
    expect(deadlines.mayStart('a', 1000 + GUARD_MS)).toBe(true);
    expect(deadlines.mayStart('b', 1001 + GUARD_MS)).toBe(false);
    // Asked again (it was handed back and claimed anew without a deadline): no longer known.
    expect(deadlines.mayStart('b', 99_999)).toBe(true);
    expect(deadlines.mayStart('unknown', 99_999)).toBe(true);
  });

  it('gives later claims twice what a late start took, once per claim, then gives it back', () => {
    const deadlines = new StartDeadlines();
    const ids = Array.from({ length: 50 }, (_, i) => `job${i}`);
    deadlines.claimed(ids, { at: 0, startBy: GUARD_MS });
    // The whole claim started 300 ms after it was logged: every job misses, and the runner
    // allows 600 ms from now on, not 2^50 times as much.
    for (const id of ids) expect(deadlines.mayStart(id, 300)).toBe(false);
    expect(deadlines.withinMs).toBe(600);
    // Starts well within the deadline shrink it back towards GUARD_MS, never below.
    for (let i = 0; i < 1000; i++) {
      deadlines.claimed([`on-time${i}`], { at: 0, startBy: deadlines.withinMs });
      expect(deadlines.mayStart(`on-time${i}`, 1)).toBe(true);
    }
    expect(deadlines.withinMs).toBe(GUARD_MS);
  });

  it('forgets a job that will not start here', () => {
    const deadlines = new StartDeadlines();
    deadlines.claimed(['gone'], { at: 0, startBy: GUARD_MS });
    deadlines.forget('gone');
    expect(deadlines.mayStart('gone', 10_000)).toBe(true);
    expect(deadlines.withinMs).toBe(GUARD_MS);
  });
});
