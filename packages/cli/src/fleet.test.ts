/**
 * Several `sleigh serve` processes on one PostgreSQL, as a fleet runs in production: the
 * official clients talk to them over real sockets, directly or through a load balancer, while
 * servers die and the database restarts under them.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostgresStore } from '@sleigh/storage-postgres';
import { Balancer, databaseUrl, peakOverlap, startPostgresCluster } from '@sleigh/testing';
import { ConvexClient, ConvexHttpClient } from 'convex/browser';
import { makeFunctionReference } from 'convex/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { project, sleigh, type Running } from './test-processes.js';

const ADMIN_KEY = 'sleigh-fleet-test-admin-key-0123456789';

const fn = {
  increment: makeFunctionReference<'mutation', { name: string }, string>('fleet:increment'),
  counter: makeFunctionReference<'query', { name: string }, number>('fleet:counter'),
  open: makeFunctionReference<'mutation', { owner: string; balance: number }, string>('fleet:open'),
  transfer: makeFunctionReference<
    'mutation',
    { from: string; to: string; amount: number },
    boolean
  >('fleet:transfer'),
  balances: makeFunctionReference<'query', Record<string, never>, number[]>('fleet:balances'),
  addNote: makeFunctionReference<'mutation', { key: string; topic: string }, string>(
    'fleet:addNote',
  ),
  notes: makeFunctionReference<'query', { topic: string }, string[]>('fleet:notes'),
  scheduleMany: makeFunctionReference<
    'mutation',
    { label: string; n: number; delayMs: number },
    null
  >('fleet:scheduleMany'),
  runs: makeFunctionReference<'query', { label: string }, Array<{ i: number; at: number }>>(
    'fleet:runs',
  ),
  enqueueSpans: makeFunctionReference<
    'mutation',
    { label: string; n: number; ms: number },
    string[]
  >('fleet:enqueueSpans'),
  spans: makeFunctionReference<
    'query',
    { label: string },
    Array<{ i: number; start: number; end: number }>
  >('fleet:spans'),
};

/** Starts `count` servers of the fleet app on one schema (of `url`, default the test server). */
async function fleet(
  count: number,
  options: { url?: string; env?: Record<string, string> } = {},
): Promise<{ servers: Running[]; dir: string; schema: string; url: string }> {
  const dir = project('fleet');
  const url = options.url ?? databaseUrl();
  const schema = `fleet_${randomBytes(4).toString('hex')}`;
  onTestFinished(async (context) => {
    if (context.task.result?.state !== 'fail')
      await PostgresStore.dropSchema(url, schema).catch(() => undefined);
  });
  const start = () =>
    sleigh(['serve', 'convex', '--port', '0', '--db', url, '--schema', schema], dir, {
      SLEIGH_ADMIN_KEY: ADMIN_KEY,
      ...options.env,
    });
  // The first applies the schema; the others find it in place.
  const first = await start();
  const others = await Promise.all(Array.from({ length: count - 1 }, start));
  const servers = [first, ...others];
  for (const server of servers) {
    if (server.url === '') throw new Error(`A server did not start:\n${server.output()}`);
  }
  return { servers, dir, schema, url };
}

function socketClient(url: string): ConvexClient {
  const client = new ConvexClient(url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  onTestFinished(() => client.close());
  return client;
}

/**
 * Clients writing notes with keys of their own until stopped; returns the keys whose mutation
 * was acknowledged, and the errors of those that were not.
 */
function writers(clients: ConvexClient[], topic: string) {
  const acked: string[] = [];
  const failed: string[] = [];
  let running = true;
  const loops = clients.map(async (client, c) => {
    for (let n = 0; running; n++) {
      const key = `${topic}-${c}-${n}`;
      try {
        await client.mutation(fn.addNote, { key, topic });
        acked.push(key);
      } catch (error) {
        failed.push(`${key}: ${(error as Error).message}`);
      }
    }
  });
  return {
    acked,
    failed,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A new version's module: new functions, scheduled and enqueued by a new mutation. */
const ROLLOUT = `import { Workpool } from '@sleigh/workpool';
import { v } from 'convex/values';
import { internal } from './_generated/api';
import { internalAction, internalMutation, mutation } from './_generated/server';

const pool = new Workpool('rollout', { maxParallelism: 4 });

export const start = mutation({
  args: { label: v.string(), n: v.number() },
  handler: async (ctx, { label, n }) => {
    for (let i = 0; i < n; i++) {
      await ctx.scheduler.runAfter(0, internal.rollout.ran, { label, i });
      await pool.enqueueAction(ctx, internal.rollout.act, { label, i });
    }
  },
});

export const ran = internalMutation({
  args: { label: v.string(), i: v.number() },
  handler: async (ctx, { label, i }) => {
    await ctx.db.insert('runs', { label, i, at: Date.now() });
  },
});

export const act = internalAction({
  args: { label: v.string(), i: v.number() },
  handler: async (ctx, { label, i }) => {
    const now = Date.now();
    await ctx.runMutation(internal.fleet.recordSpan, { label, i, start: now, end: now });
  },
});
`;

const rolloutStart = makeFunctionReference<'mutation', { label: string; n: number }, null>(
  'rollout:start',
);

describe('a fleet of sleigh servers on one PostgreSQL', () => {
  it('keeps mutations serializable across three servers: exact counts, conserved transfers', async () => {
    const { servers } = await fleet(3);
    const clients = servers.map((server) => socketClient(server.url));
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        clients[i % 3]!.mutation(fn.increment, { name: 'shared' }),
      ),
    );
    for (const client of clients)
      expect(await client.query(fn.counter, { name: 'shared' })).toBe(300);

    const accounts = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        clients[0]!.mutation(fn.open, { owner: `o${i}`, balance: 1000 }),
      ),
    );
    let moved = 0;
    await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        const from = accounts[i % 5]!;
        const to = accounts[(i * 3 + 1) % 5]!;
        if (from === to) return;
        if (await clients[i % 3]!.mutation(fn.transfer, { from, to, amount: 1 + (i % 40) }))
          moved++;
      }),
    );
    expect(moved).toBeGreaterThan(100);
    for (const client of clients) {
      const balances = await client.query(fn.balances, {});
      expect(balances.reduce((a, b) => a + b, 0)).toBe(5000);
      expect(balances.every((balance) => balance >= 0)).toBe(true);
    }
  });

  it('pushes a commit on one server to the subscribers of the others, and a client moving between servers never goes back', async () => {
    const { servers } = await fleet(3);
    const seen: string[][][] = [[], []];
    for (const [k, server] of servers.slice(1).entries()) {
      socketClient(server.url).onUpdate(fn.notes, { topic: 'pushed' }, (keys) =>
        seen[k]!.push(keys),
      );
    }
    const writer = new ConvexHttpClient(servers[0]!.url);
    for (const key of ['a', 'b', 'c']) {
      await writer.mutation(fn.addNote, { key, topic: 'pushed' });
      for (const updates of seen) {
        await expect.poll(() => updates.at(-1), { timeout: 5000 }).toContain(key);
      }
    }

    // One client through a load balancer: after each write its socket is cut and it reconnects
    // to the next server. Each mutation resolves with its write visible, and no later state
    // the client sees lacks it.
    const balancer = await Balancer.start(servers.map((server) => server.url));
    onTestFinished(() => balancer.close());
    const client = socketClient(balancer.url);
    const states: string[][] = [];
    client.onUpdate(fn.notes, { topic: 'moving' }, (keys) => states.push(keys));
    for (let i = 0; i < 6; i++) {
      await client.mutation(fn.addNote, { key: `m${i}`, topic: 'moving' });
      expect(states.at(-1)).toContain(`m${i}`);
      balancer.dropAll();
    }
    await expect.poll(() => states.at(-1)?.length, { timeout: 5000 }).toBe(6);
    for (let i = 1; i < states.length; i++) {
      expect(states[i]!.slice(0, states[i - 1]!.length)).toEqual(states[i - 1]);
    }
    // It really moved: every server took connections.
    expect(balancer.routed.size).toBe(3);

    // Each server's dashboard lists the whole fleet, itself marked.
    const health = makeFunctionReference<
      'query',
      Record<string, never>,
      { servers: Array<{ id: string; pid: number; self: boolean }> }
    >('_system/health:status');
    const admin = new ConvexHttpClient(servers[1]!.url);
    (admin as unknown as { setAdminAuth(key: string): void }).setAdminAuth(ADMIN_KEY);
    const report = await admin.query(health, {});
    expect(report.servers).toHaveLength(3);
    expect(report.servers.filter((server) => server.self)).toHaveLength(1);
    expect(new Set(report.servers.map((server) => server.pid)).size).toBe(3);
  });

  it('claims scheduled functions, cron ticks and pool jobs once across the fleet, with maxParallelism global', async () => {
    const began = Date.now();
    const { servers } = await fleet(3);
    const client = new ConvexHttpClient(servers[0]!.url);
    await client.mutation(fn.scheduleMany, { label: 'scheduled', n: 150, delayMs: 300 });
    const spanIds = await new ConvexHttpClient(servers[1]!.url).mutation(fn.enqueueSpans, {
      label: 'pool',
      n: 24,
      ms: 100,
    });
    expect(spanIds).toHaveLength(24);
    await expect
      .poll(async () => (await client.query(fn.runs, { label: 'scheduled' })).length, {
        timeout: 20_000,
      })
      .toBe(150);
    await expect
      .poll(async () => (await client.query(fn.spans, { label: 'pool' })).length, {
        timeout: 20_000,
      })
      .toBe(24);
    await sleep(1500);
    const runs = await client.query(fn.runs, { label: 'scheduled' });
    expect(runs).toHaveLength(150);
    expect(new Set(runs.map((run) => run.i)).size).toBe(150);
    const spans = await client.query(fn.spans, { label: 'pool' });
    expect(new Set(spans.map((span) => span.i)).size).toBe(24);
    expect(peakOverlap(spans)).toBeLessThanOrEqual(3);
    // The cron ticked once a second while the fleet ran, not once per server: at most one run
    // per second of the fleet's life (a tick may run late, so gaps alone prove nothing).
    const ticks = await client.query(fn.runs, { label: 'tick' });
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    expect(ticks.length).toBeLessThanOrEqual(Math.ceil((Date.now() - began) / 1000) + 1);
  });

  it('rolls out a deploy that adds functions, an index and a cron server by server: the old servers leave the new work to the new', async () => {
    const { servers, dir, schema, url } = await fleet(2);
    const next = project('fleet');
    writeFileSync(join(next, 'convex', 'rollout.ts'), ROLLOUT);
    // And a cron, which takes effect once the old servers are gone.
    const cronsFile = join(next, 'convex', 'crons.ts');
    const withCron = readFileSync(cronsFile, 'utf8').replace(
      'export default crons;',
      "crons.interval('rollout', { seconds: 1 }, internal.rollout.ran, { label: 'cron', i: 0 });\nexport default crons;",
    );
    expect(withCron).toContain("'rollout'");
    writeFileSync(cronsFile, withCron);
    const schemaFile = join(next, 'convex', 'schema.ts');
    const withIndex = readFileSync(schemaFile, 'utf8').replace(
      ".index('by_name', ['name'])",
      ".index('by_name', ['name']).index('by_value', ['value'])",
    );
    expect(withIndex).toContain('by_value');
    writeFileSync(schemaFile, withIndex);
    const serve = (cwd: string) =>
      sleigh(['serve', 'convex', '--port', '0', '--db', url, '--schema', schema], cwd, {
        SLEIGH_ADMIN_KEY: ADMIN_KEY,
      });
    const fresh = await serve(next);
    expect(fresh.url, fresh.output()).not.toBe('');
    // The new version schedules and enqueues its new functions; all four servers' runners
    // race for the work, and only the new one has them: the old ones must leave them be.
    await new ConvexHttpClient(fresh.url).mutation(rolloutStart, { label: 'new', n: 40 });
    const client = new ConvexHttpClient(servers[0]!.url);
    await expect
      .poll(async () => (await client.query(fn.runs, { label: 'new' })).length, {
        timeout: 20_000,
      })
      .toBe(40);
    await expect
      .poll(async () => (await client.query(fn.spans, { label: 'new' })).length, {
        timeout: 20_000,
      })
      .toBe(40);
    await sleep(500);
    expect(new Set((await client.query(fn.runs, { label: 'new' })).map((run) => run.i)).size).toBe(
      40,
    );
    expect((await client.query(fn.spans, { label: 'new' })).length).toBe(40);
    // The old servers still serve their own functions.
    await client.mutation(fn.increment, { name: 'rollout' });
    expect(await client.query(fn.counter, { name: 'rollout' })).toBe(1);
    // A server of the old version (a host the deploy missed) may not come back beside it: it
    // would drop the new index.
    const stale = await serve(dir);
    expect(stale.url).toBe('');
    expect(await stale.stop()).not.toBe(0);
    expect(stale.output()).toMatch(/does not keep unchanged .*stop them before starting this one/);

    // The old servers' crons are in force while they run; the new one's once they are gone.
    expect(fresh.output()).toMatch(
      /crons\.ts declares other crons than the servers already running/,
    );
    expect(await client.query(fn.runs, { label: 'cron' })).toEqual([]);
    for (const server of servers) expect(await server.stop()).toBe(0);
    const freshClient = new ConvexHttpClient(fresh.url);
    await expect
      .poll(async () => (await freshClient.query(fn.runs, { label: 'cron' })).length, {
        timeout: 20_000,
      })
      .toBeGreaterThanOrEqual(1);
    expect(fresh.output()).toMatch(/this server’s crons are in force now/);
  });

  it('survives a server killed under load: clients move, acknowledged writes stay exactly once, its jobs finish elsewhere', async () => {
    const { servers } = await fleet(3, { env: { SLEIGH_JOB_LEASE_MS: '1000' } });
    const balancer = await Balancer.start(servers.map((server) => server.url));
    onTestFinished(() => balancer.close());
    const clients = Array.from({ length: 6 }, () => socketClient(balancer.url));
    const direct = new ConvexHttpClient(servers[0]!.url);
    await direct.mutation(fn.enqueueSpans, { label: 'killed', n: 9, ms: 1500 });
    const load = writers(clients, 'kill');
    await sleep(1000);
    expect(await servers[1]!.stop('SIGKILL')).toBe(null);
    await sleep(2000);
    await load.stop();
    expect(load.failed).toEqual([]);
    expect(load.acked.length).toBeGreaterThan(50);
    const stored = await direct.query(fn.notes, { topic: 'kill' });
    // Every acknowledged write is there once; nothing is there twice.
    expect(stored.length).toBe(new Set(stored).size);
    expect(new Set(stored)).toEqual(new Set(load.acked));
    // Jobs the dead server held run again elsewhere once its lease is gone.
    await expect
      .poll(
        async () =>
          new Set((await direct.query(fn.spans, { label: 'killed' })).map((s) => s.i)).size,
        { timeout: 30_000 },
      )
      .toBe(9);
  });

  it('rides out a PostgreSQL restart: servers reconnect, clients resume, nothing committed is lost', async () => {
    const cluster = await startPostgresCluster();
    onTestFinished(() => cluster.stop());
    const { servers } = await fleet(2, { url: cluster.url });
    const balancer = await Balancer.start(servers.map((server) => server.url));
    onTestFinished(() => balancer.close());
    const watcher = socketClient(servers[1]!.url);
    const watched: string[][] = [];
    watcher.onUpdate(fn.notes, { topic: 'after' }, (keys) => watched.push(keys));
    const load = writers(
      Array.from({ length: 4 }, () => socketClient(balancer.url)),
      'restart',
    );
    await sleep(1000);
    cluster.pause();
    await sleep(1500);
    cluster.resume();
    await sleep(2500);
    await load.stop();
    expect(load.failed).toEqual([]);
    const direct = new ConvexHttpClient(servers[0]!.url);
    const stored = await direct.query(fn.notes, { topic: 'restart' });
    expect(stored.length).toBe(new Set(stored).size);
    expect(new Set(stored)).toEqual(new Set(load.acked));
    // Both servers serve writes again, and subscriptions flow again.
    for (const [i, server] of servers.entries()) {
      await new ConvexHttpClient(server.url).mutation(fn.addNote, { key: `s${i}`, topic: 'after' });
    }
    await expect.poll(() => watched.at(-1), { timeout: 10_000 }).toEqual(['s0', 's1']);
  });
});
