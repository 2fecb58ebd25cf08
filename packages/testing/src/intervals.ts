/**
 * Counting what ran when, for tests that check limits by what actually happened (never by
 * timing asserts): how many intervals overlapped at most, and how many starts fell in the
 * busiest window.
 */

/** The most of `spans` that overlap at any instant (an end and a start at once do not). */
export function peakOverlap(spans: ReadonlyArray<{ start: number; end: number }>): number {
  const edges = spans.flatMap((s) => [
    { at: s.start, delta: 1 },
    { at: s.end, delta: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let now = 0;
  let peak = 0;
  for (const edge of edges) peak = Math.max(peak, (now += edge.delta));
  return peak;
}

/** The most starts within any window of `ms` (sliding, from each start). */
export function busiestWindow(starts: readonly number[], ms: number): number {
  const sorted = [...starts].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[j]! <= sorted[i]! - ms) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}
