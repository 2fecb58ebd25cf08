/**
 * The whole example: a `sleigh serve` process on the functions folder, then a client (the
 * official ConvexClient over a WebSocket) that signs users up, downloads the weather and counts,
 * while it watches every job live through subscriptions; at the end it checks that nothing was
 * lost and stops the server.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvexClient, ConvexHttpClient } from 'convex/browser';
import type { FunctionReference, FunctionReturnType } from 'convex/server';
import { WebSocket } from 'ws';
import { api, internal } from '../convex/_generated/api.js';
import type { JobView } from '../convex/jobs.js';
import { ALL_CITIES } from '../convex/weather.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLE = resolve(here, '..');
const REPO = resolve(EXAMPLE, '..', '..');
const FUNCTIONS = join(EXAMPLE, 'convex');
const SLEIGH = join(REPO, 'packages', 'cli', 'bin', 'sleigh.js');

export interface ExampleOptions {
  /** Users to sign up (default 20); the last one has an address that bounces. */
  readonly users?: number;
  /** Cities to scrape (default all 8). */
  readonly cities?: number;
  /** Increments of the counter (default 50). */
  readonly increments?: number;
  /** PostgreSQL instead of the embedded SQLite. */
  readonly db?: string;
  readonly schema?: string;
  /** Where SQLite keeps its file and the admin key lives (default examples/workpool/.sleigh). */
  readonly dataDir?: string;
  /** Sleigh's port (default 0: any free port). */
  readonly port?: number;
  /** Give up waiting for the jobs after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Called with the live progress line whenever it changes. */
  readonly onProgress?: (line: string) => void;
  /** Called with what the run is doing (default console.log). */
  readonly log?: (line: string) => void;
  /** Called with what the server writes to stderr (its warnings and errors). */
  readonly onServerError?: (text: string) => void;
}

export type EmailState = 'pending' | 'sending' | 'retrying' | 'sent' | 'failed';

export interface Summary {
  /** Everything checked out: no lost email, every city stored, the counter exact. */
  readonly ok: boolean;
  readonly problems: string[];
  readonly seconds: number;
  readonly emails: {
    readonly users: number;
    readonly sent: number;
    readonly failed: Array<{ email: string; error: string }>;
    readonly attempts: number;
    /** Users whose email took more than one attempt. */
    readonly retried: number;
  };
  readonly weather: Array<{ city: string; temperatureC: number }>;
  readonly counter: { readonly value: number; readonly expected: number };
  /** What the live watcher saw while the jobs ran. */
  readonly watched: {
    /** Every distinct progress line, in order. */
    readonly lines: string[];
    /** Email states seen on some job at some point (pending, sending, retrying, ...). */
    readonly emailStates: EmailState[];
    /** Weather jobs seen pending or running. */
    readonly weatherInFlight: boolean;
  };
}

interface Server {
  readonly url: string;
  readonly adminKey: string;
  stop(): Promise<void>;
}

const NAMES = [
  'Ada', 'Grace', 'Alan', 'Barbara', 'Edsger', 'Frances', 'Donald', 'Margaret', 'Ken', 'Radia',
  'Linus', 'Hedy', 'Dennis', 'Karen', 'Tony', 'Sophie', 'John', 'Shafi', 'Leslie', 'Mallory',
]; // prettier-ignore

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Forks `sleigh serve` on the functions folder and waits until it is ready. */
export async function startServer(
  options: Pick<ExampleOptions, 'db' | 'schema' | 'dataDir' | 'port' | 'onServerError'> = {},
): Promise<Server> {
  const dataDir = options.dataDir ?? join(EXAMPLE, '.sleigh');
  mkdirSync(dataDir, { recursive: true });
  const args = ['serve', FUNCTIONS, '--port', String(options.port ?? 0), '--data-dir', dataDir];
  if (options.db !== undefined)
    args.push('--db', options.db, '--schema', options.schema ?? 'workpool');
  // With an IPC channel the server shuts down when this process goes away, however it ends.
  const server = fork(SLEIGH, args, {
    execArgv: [],
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const collect = (chunk: Buffer) => (output += chunk.toString());
  const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      collect(chunk);
      // The server prints the key it generated, not one given by SLEIGH_ADMIN_KEY.
      const match = output.match(
        /Sleigh ready at (\S+)\s+(?:Admin key: (\S+)|Using the admin key)/,
      );
      if (match !== null) {
        server.stdout!.off('data', onData);
        server.stderr!.off('data', collect);
        resolve(match);
      }
    };
    server.stdout!.on('data', onData);
    server.stderr!.on('data', collect);
    server.once('exit', (code) =>
      reject(new Error(`The Sleigh server exited (${code}) before it was ready:\n${output}`)),
    );
  });
  // Keep draining the server's output so it never blocks on a full pipe; pass its errors on.
  server.stdout!.resume();
  server.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString().replace(/^Shutting down\n/m, '');
    if (text !== '') options.onServerError?.(text);
  });
  return {
    url: ready[1]!,
    adminKey: ready[2] ?? process.env.SLEIGH_ADMIN_KEY!,
    stop: async () => {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await exited(server);
    },
  };
}

/**
 * Where a user's verification email is, from the user (its final status) and, while unfinished,
 * its job's status: `pending` waits for a slot (or, after a failed attempt, for its backoff),
 * `running` is an attempt in progress.
 */
export function emailState(
  user: { emailStatus: 'pending' | 'sent' | 'failed'; emailAttempts: number },
  job: JobView | undefined,
): EmailState {
  if (user.emailStatus !== 'pending') return user.emailStatus;
  if (job === undefined) return 'pending';
  switch (job.status.state) {
    case 'pending':
      // Waiting for a slot, or (after a failed attempt) for its backoff to pass.
      return job.status.previousAttempts > 0 ? 'retrying' : 'pending';
    case 'running':
      return job.status.previousAttempts > 0 ? 'retrying' : 'sending';
    case 'finished':
      // Done; its onComplete is about to record how it went on the user.
      return 'sending';
  }
}

type Users = FunctionReturnType<typeof api.auth.users>;

/** Runs the whole example against a fresh server; resolves with what happened. */
export async function runExample(options: ExampleOptions = {}): Promise<Summary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const userCount = options.users ?? 20;
  const cities = ALL_CITIES.slice(0, options.cities ?? ALL_CITIES.length);
  const increments = options.increments ?? 50;

  const server = await startServer(options);
  const client = new ConvexClient(server.url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  try {
    log(`Sleigh ready at ${server.url} (${options.db === undefined ? 'SQLite' : 'PostgreSQL'})`);
    log(`Dashboard: ${server.url}/dashboard/ (admin key ${server.adminKey})`);
    // A fresh start, in case the data folder or database was used before. The admin key lets
    // a client call internal functions; the client's types only know public ones.
    const admin = new ConvexHttpClient(server.url);
    (admin as unknown as { setAdminAuth(key: string): void }).setAdminAuth(server.adminKey);
    await admin.mutation(
      internal.admin.reset as unknown as FunctionReference<
        'mutation',
        'public',
        { confirm: 'reset' },
        number
      >,
      { confirm: 'reset' },
    );
    return await watchAndRun(client, { userCount, cities, increments, log, options });
  } finally {
    await client.close();
    await server.stop();
  }
}

async function watchAndRun(
  client: ConvexClient,
  run: {
    userCount: number;
    cities: string[];
    increments: number;
    log: (line: string) => void;
    options: ExampleOptions;
  },
): Promise<Summary> {
  const { userCount, cities, increments, log, options } = run;
  const started = performance.now();

  // What the subscriptions last said.
  let users: Users = [];
  const emailJobs = new Map<string, JobView>();
  let weatherJobs: JobView[] = [];
  let weatherStored = 0;
  let counter = 0;
  let counterFinal: number | null = null;
  let weatherIds: string[] | null = null;

  const lines: string[] = [];
  const emailStates = new Set<EmailState>();
  let weatherInFlight = false;
  const unsubscribers: Array<() => void> = [];
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const emailsDone = () =>
    users.length === userCount && users.every((user) => user.emailStatus !== 'pending');
  const weatherDone = () =>
    weatherIds !== null &&
    weatherJobs.length === weatherIds.length &&
    weatherJobs.every((job) => job.status.state === 'finished') &&
    weatherStored === cities.length;
  const counterDone = () => counterFinal !== null && counter >= counterFinal;

  const update = () => {
    const counts: Record<EmailState, number> = {
      sent: 0,
      failed: 0,
      retrying: 0,
      sending: 0,
      pending: 0,
    };
    for (const user of users) {
      const state = emailState(
        user,
        user.emailWorkId === null ? undefined : emailJobs.get(user.emailWorkId),
      );
      counts[state]++;
      emailStates.add(state);
    }
    const emailParts = (Object.keys(counts) as EmailState[])
      .filter((state) => counts[state] > 0)
      .map((state) => `${counts[state]} ${state}`);
    const weatherFinished = weatherJobs.filter((job) => job.status.state === 'finished').length;
    if (weatherJobs.some((job) => job.status.state !== 'finished')) weatherInFlight = true;
    // Claimed jobs read `running` too; the first is the one the pool of one is running.
    const running = weatherJobs.findIndex((job) => job.status.state === 'running');
    const line =
      `emails: ${emailParts.length === 0 ? `0/${userCount}` : emailParts.join(', ')}` +
      ` | weather: ${weatherFinished}/${cities.length}` +
      (running >= 0 ? ` (scraping ${cities[running]})` : '') +
      ` | counter: ${counter}/${increments}`;
    if (line !== lines[lines.length - 1]) {
      lines.push(line);
      options.onProgress?.(line);
    }
    if (emailsDone() && weatherDone() && counterDone()) finish();
  };

  // The email jobs' ids come with the users: watch whichever ids the users list names.
  let watchedEmailIds = '';
  let unwatchEmails: (() => void) | null = null;
  const watchEmailJobs = (ids: string[]) => {
    const key = ids.join(',');
    if (key === watchedEmailIds) return;
    watchedEmailIds = key;
    unwatchEmails?.();
    unwatchEmails = client.onUpdate(api.jobs.jobStatus, { ids }, (jobs) => {
      for (const job of jobs) emailJobs.set(job.id, job);
      update();
    });
  };
  unsubscribers.push(() => unwatchEmails?.());
  unsubscribers.push(
    client.onUpdate(api.auth.users, {}, (value) => {
      users = value;
      watchEmailJobs(
        value.flatMap((user) => (user.emailWorkId === null ? [] : [user.emailWorkId])),
      );
      update();
    }),
    client.onUpdate(api.weather.list, {}, (value) => {
      weatherStored = value.length;
      update();
    }),
    client.onUpdate(api.counter.get, {}, (value) => {
      counter = value;
      update();
    }),
  );

  try {
    // All three kinds of work at once: each pool keeps to its own parallelism.
    const signUps = Promise.all(
      Array.from({ length: userCount }, (_, i) => {
        const name = NAMES[i % NAMES.length]! + (i >= NAMES.length ? ` ${i + 1}` : '');
        const last = i === userCount - 1 && userCount > 1;
        const email = `${name.toLowerCase().replace(/\s+/g, '.')}@${last ? 'example.invalid' : 'example.com'}`;
        return client.mutation(api.auth.signUp, { name, email });
      }),
    );
    const weather = client.mutation(api.weather.downloadLatestWeather, { cities }).then((ids) => {
      weatherIds = ids;
      unsubscribers.push(
        client.onUpdate(api.jobs.jobStatus, { ids }, (jobs) => {
          weatherJobs = jobs;
          update();
        }),
      );
    });
    const counting = client
      .action(api.counter.incrementMany, { times: increments })
      .then((values) => {
        counterFinal = Math.max(0, ...values);
        update();
        return values;
      });
    // Awaited below; until then a failure must not count as unhandled.
    counting.catch(() => undefined);
    await Promise.all([signUps, weather]);
    log(
      `Signed up ${userCount} users, queued ${cities.length} scrapes, ` +
        `counting to ${increments}; watching the jobs:`,
    );
    const seen = await counting;

    const timeoutMs = options.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      finished.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;

    // The final word, read once more directly rather than from the subscriptions.
    const [finalUsers, stats, stored, value] = await Promise.all([
      client.query(api.auth.users, {}),
      client.query(api.auth.emailStats, {}),
      client.query(api.weather.list, {}),
      client.query(api.counter.get, {}),
    ]);
    const jobs = await client.query(api.jobs.jobStatus, {
      ids: finalUsers.flatMap((user) => (user.emailWorkId === null ? [] : [user.emailWorkId])),
    });
    const results = await client.query(api.jobs.jobStatus, { ids: weatherIds ?? [] });

    const problems: string[] = [];
    if (timedOut) problems.push(`the jobs were not all done after ${timeoutMs} ms`);
    if (value !== increments) problems.push(`the counter is ${value}, not ${increments}`);
    const sorted = [...seen].sort((a, b) => a - b);
    if (sorted.some((v, i) => v !== i + 1)) {
      problems.push(`the increments did not each see a different value: ${sorted.join(',')}`);
    }
    if (finalUsers.length !== userCount) {
      problems.push(`${finalUsers.length} users signed up, not ${userCount}`);
    }
    const outbox = new Set(stats.outbox);
    const jobOf = new Map(jobs.map((job) => [job.id, job]));
    for (const user of finalUsers) {
      const job = user.emailWorkId === null ? undefined : jobOf.get(user.emailWorkId);
      if (user.emailStatus === 'pending') problems.push(`${user.email}: the email was lost`);
      if (job === undefined || job.status.state !== 'finished' || job.result === null) {
        problems.push(`${user.email}: its email job did not finish`);
      } else if ((job.result.kind === 'success') !== (user.emailStatus === 'sent')) {
        problems.push(
          `${user.email}: the job says ${job.result.kind}, the user ${user.emailStatus}`,
        );
      }
      if (outbox.has(user._id) !== (user.emailStatus === 'sent')) {
        problems.push(`${user.email}: ${user.emailStatus}, but the outbox disagrees`);
      }
    }
    if (stats.outbox.length !== outbox.size) problems.push('an email was sent twice');
    for (const [i, city] of cities.entries()) {
      const row = stored.find((w) => w.city === city);
      const result = results[i]?.result;
      if (row === undefined) problems.push(`no weather for ${city}`);
      else if (result?.kind !== 'success' || result.returnValue !== row.temperatureC) {
        problems.push(`${city}: the scrape job's result does not match the stored weather`);
      }
    }

    const sent = finalUsers.filter((user) => user.emailStatus === 'sent').length;
    return {
      ok: problems.length === 0,
      problems,
      seconds,
      emails: {
        users: finalUsers.length,
        sent,
        failed: finalUsers
          .filter((user) => user.emailStatus === 'failed')
          .map((user) => ({ email: user.email, error: user.emailError ?? '' })),
        attempts: stats.attempts,
        retried: jobs.filter(
          (job) =>
            job.result?.kind === 'success' &&
            (job.result.returnValue as { attempt: number }).attempt > 1,
        ).length,
      },
      weather: stored.map(({ city, temperatureC }) => ({ city, temperatureC })),
      counter: { value, expected: increments },
      watched: {
        lines,
        emailStates: [...emailStates],
        weatherInFlight,
      },
    };
  } finally {
    for (const unsubscribe of unsubscribers) unsubscribe();
  }
}

/** The summary, for people. */
export function describe(summary: Summary): string {
  const { emails, weather, counter } = summary;
  const out = [
    `Done in ${summary.seconds.toFixed(1)} s.`,
    `Emails:  ${emails.sent}/${emails.users} sent, ${emails.failed.length} failed; ` +
      `${emails.attempts} attempts in all (${emails.retried} sent only after a retry)`,
    ...emails.failed.map(({ email, error }) => `         failed: ${email}: ${error}`),
    `Weather: ${weather.map((w) => `${w.city} ${w.temperatureC} °C`).join(', ')}`,
    `Counter: ${counter.value} (expected ${counter.expected})`,
    `Watched live: ${summary.watched.lines.length} distinct progress lines; email states seen: ` +
      summary.watched.emailStates.join(', '),
  ];
  out.push(
    summary.ok ? 'OK: no email lost, every city stored, the counter exact.' : 'PROBLEMS:',
    ...summary.problems.map((problem) => `  - ${problem}`),
  );
  return out.join('\n');
}
