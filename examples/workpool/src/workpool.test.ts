/**
 * The example end to end: a `sleigh serve` process, the official ConvexClient over a WebSocket,
 * three pools at work at once, watched live; on SQLite and on PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { databaseUrl, tempDir } from '@sleigh/testing';
import { ALL_CITIES } from '../convex/weather.js';
import { describe as describeSummary, emailState, runExample } from './example.js';

async function fullRun(db?: string) {
  const summary = await runExample({
    dataDir: tempDir('sleigh-workpool-'),
    log: () => undefined,
    timeoutMs: 20_000,
    ...(db === undefined ? {} : { db, schema: `workpool_${randomBytes(4).toString('hex')}` }),
  });
  expect(summary.problems, describeSummary(summary)).toEqual([]);
  expect(summary.ok).toBe(true);

  // The counter went through the pool of one: exactly one increment each, none lost.
  expect(summary.counter).toEqual({ value: 50, expected: 50 });

  // Every user's email ended one way or the other; only the bouncing address failed (retries
  // make 5 refusals in a row too unlikely to matter: 0.2^5 per user).
  expect(summary.emails.users).toBe(20);
  expect(summary.emails.sent + summary.emails.failed.length).toBe(20);
  expect(summary.emails.failed.map((f) => f.email)).toContain('mallory@example.invalid');
  expect(summary.emails.failed.find((f) => f.email === 'mallory@example.invalid')!.error).toMatch(
    /no such domain/,
  );
  expect(summary.emails.attempts).toBeGreaterThanOrEqual(20);

  // The weather of every city, as the scrape jobs returned it.
  expect(summary.weather.map((w) => w.city).sort()).toEqual([...ALL_CITIES].sort());

  // The watcher saw the jobs move, not only the end.
  const { lines, emailStates, weatherInFlight } = summary.watched;
  expect(lines.length).toBeGreaterThan(2);
  expect(emailStates).toContain('pending');
  expect(emailStates).toEqual(expect.arrayContaining(['sent', 'failed']));
  expect(weatherInFlight).toBe(true);
  expect(lines.at(-1)).toBe(
    `emails: ${summary.emails.sent} sent, ${summary.emails.failed.length} failed | weather: 8/8 | counter: 50/50`,
  );
}

describe('the workpool example', () => {
  it('runs end to end on SQLite: no email lost, every city stored, the counter exact', async () => {
    await fullRun();
  }, 30_000);

  it('runs end to end on PostgreSQL', async () => {
    await fullRun(databaseUrl());
  }, 30_000);
});

describe('emailState', () => {
  const job = (state: 'pending' | 'running', previousAttempts: number) => ({
    id: 'j',
    status: { state, previousAttempts },
    result: null,
  });
  it('reads the user first, then the job', () => {
    expect(emailState({ emailStatus: 'sent', emailAttempts: 1 }, undefined)).toBe('sent');
    expect(emailState({ emailStatus: 'pending', emailAttempts: 0 }, undefined)).toBe('pending');
    expect(emailState({ emailStatus: 'pending', emailAttempts: 0 }, job('pending', 0))).toBe(
      'pending',
    );
    expect(emailState({ emailStatus: 'pending', emailAttempts: 1 }, job('running', 0))).toBe(
      'sending',
    );
    expect(emailState({ emailStatus: 'pending', emailAttempts: 2 }, job('running', 1))).toBe(
      'retrying',
    );
    expect(emailState({ emailStatus: 'pending', emailAttempts: 1 }, job('pending', 1))).toBe(
      'retrying',
    );
    expect(
      emailState(
        { emailStatus: 'pending', emailAttempts: 1 },
        { id: 'j', status: { state: 'finished' }, result: null },
      ),
    ).toBe('sending');
  });
});
