/**
 * The workshop for real: a `sleigh serve` process, Santa and 19 workers each in its own process,
 * talking over sockets through the official ConvexClient; the checker replays the whole history.
 */
import { existsSync } from 'node:fs';
import { ConvexHttpClient } from 'convex/browser';
import { chromium, type Browser } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { databaseUrl, tempDir } from '@sleigh/testing';
import { api } from '../convex/_generated/api.js';
import { check, describe as describeReport, type Event } from './check.js';
import { freshSchema, startWorkshop, type Workshop } from './workshop.js';

const CHROMIUM = '/usr/bin/chromium';

let running: Workshop | null = null;
afterEach(async () => {
  running?.stop();
  await running?.finished.catch(() => undefined);
  running = null;
});

async function fullRun(db?: string, servers = 1) {
  running = await startWorkshop({
    servers,
    cycles: 2000,
    zeroDelay: true,
    dataDir: tempDir('sleigh-santa-'),
    port: 0,
    pagePort: null,
    log: () => undefined,
    ...(db === undefined ? {} : { db, schema: freshSchema() }),
  });
  const { report } = await running.finished;
  expect(report.violations, describeReport(report)).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.cycles).toBe(2000);
  expect(report.reindeerGroups).toBeGreaterThan(0);
  expect(report.elfGroups).toBeGreaterThan(0);
}

/**
 * A full run takes 50–60 s on SQLite and 150–215 s on PostgreSQL on a 2-core CI machine beside
 * the other test files; the limit leaves room for a slow day. Speed is the benchmarks' business.
 */
const FULL_RUN_MS = 450_000;

describe('the Santa Claus workshop', () => {
  it(
    'runs 2,000 groups at zero delay with 20 actor processes on SQLite, checker green',
    async () => {
      await fullRun();
    },
    FULL_RUN_MS,
  );

  it(
    'runs 2,000 groups at zero delay with 20 actor processes on PostgreSQL, checker green',
    async () => {
      await fullRun(databaseUrl());
    },
    FULL_RUN_MS,
  );

  it(
    'runs 2,000 groups with its actors split over two servers on one PostgreSQL, checker green',
    async () => {
      await fullRun(databaseUrl(), 2);
    },
    FULL_RUN_MS,
  );

  it('shows the workshop live in Chromium, and a slider changes the stored pace', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is needed (apt-get install chromium)`).toBe(true);
    running = await startWorkshop({
      dataDir: tempDir('sleigh-santa-page-'),
      port: 0,
      pagePort: 0,
      log: () => undefined,
    });
    const admin = new ConvexHttpClient(running.url);
    // Quick paces so the board changes within a second or two.
    await admin.mutation(api.speeds.set, { workMs: 300, vacationMs: 300 });
    let browser: Browser | null = null;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
      });
      const page = await browser.newPage();
      await page.goto(running.pageUrl!);
      const counts = async () =>
        Promise.all(
          ['vacation', 'ready', 'presents', 'delivering'].map(async (column) =>
            Number(await page.getByTestId(`count-${column}`).textContent()),
          ),
        );
      await page.getByTestId('count-ready').waitFor();
      // Everyone is on the board, and the board moves: more than one distinct snapshot of counts.
      const seen = new Set<string>();
      await expect
        .poll(
          async () => {
            const now = await counts();
            expect(now.reduce((a, b) => a + b, 0)).toBe(19);
            seen.add(now.join(','));
            return seen.size;
          },
          { timeout: 20_000, interval: 100 },
        )
        .toBeGreaterThanOrEqual(3);

      await page.getByTestId('slider-vacationMs').fill('2500');
      await expect
        .poll(() => admin.query(api.speeds.get, {}), { timeout: 10_000 })
        .toEqual({ workMs: 300, vacationMs: 2500 });
      await expect
        .poll(() => page.getByTestId('pace-vacationMs').textContent(), { timeout: 10_000 })
        .toBe('2500 ms');
    } finally {
      await browser?.close();
    }
    running.stop();
    const { report } = await running.finished;
    running = null;
    expect(report.violations).toEqual([]);
    expect(report.cycles).toBeGreaterThan(0);
  }, 120_000);
});

describe('the checker', () => {
  const register = (worker: string, kind: 'reindeer' | 'elf'): Event => ({
    _id: `e-${worker}`,
    _creationTime: 0,
    type: 'register',
    worker,
    kind,
  });
  const dispatch = (
    group: number,
    kind: 'reindeer' | 'elf',
    members: string[],
    extra: Partial<Event> = {},
  ): Event => ({
    _id: `d${group}`,
    _creationTime: 0,
    type: 'dispatch',
    group,
    kind,
    members,
    ...extra,
  });
  const release = (group: number): Event => ({
    _id: `r${group}`,
    _creationTime: 0,
    type: 'release',
    group,
  });
  const ready = (worker: string): Event => ({
    _id: `y-${worker}-${Math.random()}`,
    _creationTime: 0,
    type: 'ready',
    worker,
  });
  const setup = [
    register('r1', 'reindeer'),
    register('r2', 'reindeer'),
    register('e1', 'elf'),
    register('e2', 'elf'),
    register('e3', 'elf'),
    register('e4', 'elf'),
  ];

  it('accepts a correct history', () => {
    const report = check([
      ...setup,
      dispatch(1, 'reindeer', ['r1', 'r2'], { reindeerTotal: 2, readyReindeer: 2 }),
      release(1),
      dispatch(2, 'elf', ['e1', 'e2', 'e3'], { reindeerTotal: 2, readyReindeer: 0 }),
      release(2),
      ready('r1'),
    ]);
    expect(report.violations).toEqual([]);
    expect(report).toMatchObject({ ok: true, cycles: 2, reindeerGroups: 1, elfGroups: 1 });
  });

  it.each([
    [
      'a partial reindeer group',
      [dispatch(1, 'reindeer', ['r1'], { reindeerTotal: 2 }), release(1)],
      /must be all 2 reindeer/,
    ],
    [
      'an elf group of two',
      [dispatch(1, 'elf', ['e1', 'e2'], { reindeerTotal: 2 }), release(1)],
      /must be 3 elves/,
    ],
    [
      'elves before ready reindeer',
      [dispatch(1, 'elf', ['e1', 'e2', 'e3'], { reindeerTotal: 2, readyReindeer: 2 }), release(1)],
      /elves were chosen while all 2 reindeer were ready/,
    ],
    [
      'two groups at once',
      [
        dispatch(1, 'elf', ['e1', 'e2', 'e3'], { reindeerTotal: 2 }),
        dispatch(2, 'reindeer', ['r1', 'r2'], { reindeerTotal: 2 }),
      ],
      /still at work/,
    ],
    [
      'Santa alone',
      [dispatch(1, 'elf', [], { reindeerTotal: 2 }), release(1)],
      /Santa worked alone/,
    ],
    [
      'a worker twice in a group',
      [dispatch(1, 'elf', ['e1', 'e1', 'e2'], { reindeerTotal: 2 }), release(1)],
      /has a worker twice/,
    ],
    [
      'rejoining before returning from vacation',
      [
        dispatch(1, 'elf', ['e1', 'e2', 'e3'], { reindeerTotal: 2 }),
        release(1),
        dispatch(2, 'elf', ['e1', 'e2', 'e4'], { reindeerTotal: 2 }),
        release(2),
      ],
      /joined while vacationing/,
    ],
    [
      'a group never released',
      [dispatch(1, 'elf', ['e1', 'e2', 'e3'], { reindeerTotal: 2 })],
      /never released/,
    ],
    [
      'the elves never served',
      [dispatch(1, 'reindeer', ['r1', 'r2'], { reindeerTotal: 2 }), release(1)],
      /elves never made presents/,
    ],
  ])('catches %s', (_name, events, message) => {
    const report = check([...setup, ...events]);
    expect(report.ok).toBe(false);
    expect(report.violations.join('\n')).toMatch(message);
  });
});
