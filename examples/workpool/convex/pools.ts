/**
 * The app's workpools. Each is a name and its settings: jobs are kept by the Sleigh server (in
 * its `_pool_jobs` table), so any function can enqueue into a pool, and a job's id is all it
 * takes to ask for its status or result.
 *
 * Verification emails and weather scraping get pools of their own, so a long queue of scrapes
 * never delays an email; the counter gets a pool of one, so its increments never run at once.
 */
import { Workpool } from '@sleigh/workpool';

/** Important, quick work: five at a time, failed sends retried with backoff. */
export const emailPool = new Workpool('emails', {
  maxParallelism: 5,
  retryActionsByDefault: true,
  defaultRetryBehavior: { maxAttempts: 5, initialBackoffMs: 100, base: 2 },
  // A send stuck for this long counts as a failed attempt (and is retried).
  actionTimeoutMs: 10_000,
  // Keep results (what `jobStatus` shows) for an hour.
  ttl: 60 * 60 * 1000,
});

/** Less important work against someone else's API: one request at a time. */
export const scrapePool = new Workpool('scrape', { maxParallelism: 1 });

/** A pool of one: mutations on the same document run one after another, never conflicting. */
export const counterPool = new Workpool('counter', { maxParallelism: 1 });
