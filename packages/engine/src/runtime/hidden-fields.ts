/**
 * Fields Sleigh keeps on system documents for its own bookkeeping, which user code never sees:
 * Convex's documents of these tables have no such fields, and a `returns` validator or a
 * client written against Convex's shape must not meet them. (The scheduler's runner reads and
 * writes them through the store, never through `ctx.db`.)
 */
const HIDDEN = new Map<string, readonly string[]>([
  // Which runner holds a running scheduled action, and until when (jobs/runner.ts); the
  // function's signature where it was scheduled (jobs/fleet-view.ts).
  ['_scheduled_functions', ['owner', 'leaseUntil', 'sig']],
  // The cron function's signature where the cron was written (jobs/crons.ts).
  ['_cron_jobs', ['sig']],
]);

/** A stored document's JSON as user code sees it: `json` itself unless it holds hidden fields. */
export function visibleJson(table: string, json: string): string {
  const hidden = HIDDEN.get(table);
  if (hidden === undefined || !hidden.some((field) => json.includes(`"${field}":`))) return json;
  const document = JSON.parse(json) as Record<string, unknown>;
  for (const field of hidden) delete document[field];
  return JSON.stringify(document);
}
