/**
 * What a pool job's document keeps of its attempts: whatever a function returned or threw, the
 * document stays under a document's limit, and says what it cut.
 */
import { describe, expect, it } from 'vitest';
import {
  afterAttempt,
  failedUnstorable,
  newPoolJobId,
  storedError,
  unstorable,
  type PoolJob,
} from './pool-jobs.js';
import { MAX_NEW_JOB_BYTES } from './pool-service.js';

const job = (over: Partial<PoolJob> = {}): PoolJob => ({
  _id: newPoolJobId(),
  _creationTime: 1,
  pool: 'p',
  fn: 'jobs:work',
  kind: 'action',
  args: {},
  name: 'jobs:work',
  state: 'running',
  due: 0,
  enqueuedAt: 0,
  attempt: 1,
  retry: { maxAttempts: 100, initialBackoffMs: 1, base: 1 },
  timeoutMs: null,
  ttlMs: 1000,
  onComplete: null,
  failures: [],
  ...over,
});

describe('a job document after its attempts', () => {
  it('keeps errors up to 8,192 characters, and says how long a cut one was', () => {
    expect(storedError('short')).toBe('short');
    const cut = storedError('e'.repeat(10_000));
    expect(cut).toBe(`${'e'.repeat(8192)}… (cut: 10000 characters in all)`);
  });

  it('keeps the latest 20 failed attempts, each with its number', () => {
    let current = job();
    for (let attempt = 1; attempt <= 25; attempt++) {
      current = afterAttempt(
        { ...current, state: 'running', attempt },
        { kind: 'failed', error: `failure ${attempt}` },
        attempt,
        { retryable: true },
      );
    }
    expect(current.state).toBe('pending');
    expect(current.failures.map((failure) => failure.attempt)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 6),
    );
    expect(current.failures.at(-1)?.error).toBe('failure 25');
  });

  it('knows a result too large for the document, and measures only results that may be', () => {
    const done = (returnValue: string) =>
      afterAttempt(job(), { kind: 'success', returnValue }, 5, { retryable: false });
    expect(unstorable(done('small'))).toBeNull();
    expect(unstorable(done('x'.repeat(100_000)))).toBeNull();
    expect(unstorable(done('x'.repeat(1_100_000)))).toMatch(
      /^Table "_pool_jobs": the document is \d+ bytes, over the limit of 1048576 bytes/,
    );
  });

  it('can always record a failure: new jobs leave room, older full ones keep a short error', () => {
    const long = 'e'.repeat(20_000);
    // The largest job enqueue takes, failing with long errors after many attempts.
    let roomy = job({ args: { pad: 'x'.repeat(MAX_NEW_JOB_BYTES - 400) } });
    for (let attempt = 1; attempt <= 5; attempt++) {
      roomy = afterAttempt(roomy, { kind: 'failed', error: long }, attempt, { retryable: true });
    }
    expect(unstorable(roomy)).not.toBeNull();
    const kept = failedUnstorable(roomy, 'too large', 6);
    expect(unstorable(kept)).toBeNull();
    expect(kept.failures).toHaveLength(1);
    // A job stored before that room was kept: its document was already full.
    const full = job({ args: { pad: 'x'.repeat(1_040_000) } });
    const failed = failedUnstorable(full, `too large: ${long}`, 6);
    expect(unstorable(failed)).toBeNull();
    expect(failed).toMatchObject({ state: 'failed', failures: [] });
    expect(failed.result).toEqual({
      kind: 'failed',
      error: 'Sleigh could not store the outcome of this attempt: its arguments leave no room',
    });
  });
});
