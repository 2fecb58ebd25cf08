/**
 * The dashboard's backend, over the sync protocol with the official ConvexClient as the admin:
 * editing data through the schema, the live execution log, a job's page and dependency graph
 * with retry and re-run, pool throughput, health; plus the Prometheus endpoint and the
 * dashboard's files.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFunctionReference as ref, type PaginationResult } from 'convex/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ADMIN_KEY, asAdmin, connect, DRIVERS, startServer } from './test-server.js';

type Page<T> = PaginationResult<T>;
type Message = { _id: string; channel: string; author: string; body: string; likes?: number };
type Execution = { path: string; outcome: string; error: string | null; logLines: string[] };
type Node = { id: string; name: string; state: string; outcome: string | null };
type Status = {
  driver: string;
  servers: Array<{ self: boolean; pid: number; code: string | null }>;
  connections: number;
  subscriptions: number;
  jobLagMs: number;
  commits: number;
};
type Second = {
  t: number;
  started: number;
  succeeded: number;
  failed: number;
  latencyP99Ms: number | null;
};

const data = {
  tables: ref<
    'query',
    Record<string, never>,
    Array<{
      name: string;
      documents: number;
      indexes: Array<{ name: string; fields: string[] }>;
      documentType: { type: string } | null;
    }>
  >('_system/data:tables'),
  documents: ref<'query', Record<string, unknown>, Page<Message>>('_system/data:documents'),
  document: ref<'query', { table: string; id: string }, Message | null>('_system/data:document'),
  insert: ref<'mutation', { table: string; document: unknown }, string>('_system/data:insert'),
  replace: ref<'mutation', { table: string; id: string; document: unknown }, null>(
    '_system/data:replace',
  ),
  remove: ref<'mutation', { table: string; ids: string[] }, number>('_system/data:remove'),
};
const logs = ref<'query', { function?: string; outcome?: string }, Execution[]>(
  '_system/logs:recent',
);
const pools = {
  job: ref<
    'query',
    { id: string },
    {
      name: string;
      state: string;
      enqueuedAt: number;
      startedAt: number | null;
      finishedAt: number | null;
      argsBytes: number;
      resultBytes: number;
      dependsOn: string[];
      dependents: string[];
      failures: unknown[];
    } | null
  >('_system/pools:job'),
  graph: ref<'query', { id: string }, { nodes: Node[]; edges: unknown[]; truncated: boolean }>(
    '_system/pools:graph',
  ),
  retry: ref<'mutation', { ids: string[] }, number>('_system/pools:retry'),
  rerun: ref<'mutation', { id: string }, number>('_system/pools:rerun'),
  stats: ref<'query', { pool: string; seconds?: number }, Second[]>('_system/pools:stats'),
};
const status = ref<'query', Record<string, never>, Status>('_system/health:status');
const send = ref<'mutation', { channel: string; author: string; body: string }, string>(
  'messages:send',
);
const diamond = ref<'mutation', Record<string, never>, Record<string, string>>('graph:diamond');
const failingChain = ref<'mutation', { switch: string }, Record<string, string>>(
  'graph:failingChain',
);
const enqueueWork = ref<
  'mutation',
  { pool: string; label: string; ms: number; count?: number },
  string[]
>('pools:enqueueWork');
const setSwitch = ref<'mutation', { name: string; on: boolean }, null>('graph:setSwitch');

describe.each(DRIVERS)('the dashboard backend on $name', (driver) => {
  it('browses a table in index order with filters, and edits it through the schema', async () => {
    const server = await startServer(driver);
    const client = asAdmin(connect(server));
    const tables = await client.query(data.tables, {});
    const messages = tables.find((table) => table.name === 'messages')!;
    expect(messages.indexes.map((index) => index.name)).toEqual([
      'by_creation_time',
      'by_channel',
      'by_channel_author',
    ]);
    expect(messages.indexes[2]!.fields).toEqual(['channel', 'author']);
    expect(messages.documentType?.type).toBe('object');

    for (const [channel, author] of [
      ['b', 'x'],
      ['a', 'y'],
      ['b', 'y'],
      ['a', 'x'],
    ] as const) {
      await client.mutation(data.insert, {
        table: 'messages',
        document: { channel, author, body: `${channel}${author}` },
      });
    }
    const byChannel = await client.query(data.documents, {
      table: 'messages',
      index: 'by_channel_author',
      order: 'asc',
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(byChannel.page.map((m) => m.body)).toEqual(['ax', 'ay', 'bx', 'by']);
    const filtered = await client.query(data.documents, {
      table: 'messages',
      filters: [{ field: 'author', value: 'y' }],
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(filtered.page.map((m) => m.body)).toEqual(['by', 'ay']);

    const doc = filtered.page[0]!;
    await client.mutation(data.replace, {
      table: 'messages',
      id: doc._id,
      document: { ...doc, body: 'edited', likes: 2 },
    });
    expect(await client.query(data.document, { table: 'messages', id: doc._id })).toMatchObject({
      body: 'edited',
      likes: 2,
    });
    // The schema refuses a bad edit, naming the field, and nothing is written.
    await expect(
      client.mutation(data.replace, {
        table: 'messages',
        id: doc._id,
        document: { ...doc, likes: 'many' },
      }),
    ).rejects.toThrow(/likes/);
    await expect(
      client.mutation(data.insert, { table: 'messages', document: { channel: 'a' } }),
    ).rejects.toThrow(/author|body/);
    await expect(
      client.mutation(data.replace, { table: 'counters', id: doc._id, document: {} }),
    ).rejects.toThrow(/is not the id of a document in "counters"/);
    expect(await client.query(data.document, { table: 'messages', id: doc._id })).toMatchObject({
      body: 'edited',
    });
    expect(await client.mutation(data.remove, { table: 'messages', ids: [doc._id] })).toBe(1);
    expect(await client.query(data.document, { table: 'messages', id: doc._id })).toBeNull();
  });

  it('streams executions live, with outcomes, errors and log lines, filtered', async () => {
    const server = await startServer(driver);
    const client = asAdmin(connect(server));
    const seen: Execution[][] = [];
    client.onUpdate(logs, { function: 'messages:send' }, (list) => seen.push(list));
    await client.mutation(send, { channel: 'c', author: 'a', body: 'hello' });
    await expect(client.mutation(send, { channel: 'c', author: 'a', body: '' })).rejects.toThrow();
    await client.query(ref<'query', Record<string, never>, unknown>('messages:list'), {});
    await expect.poll(() => seen.at(-1)?.length, { timeout: 5000 }).toBe(2);
    const [failed, succeeded] = seen.at(-1)!;
    expect(succeeded).toMatchObject({ path: 'messages:send', outcome: 'success', error: null });
    expect(failed).toMatchObject({ path: 'messages:send', outcome: 'failure' });
    const failures = await client.query(logs, { outcome: 'failure' });
    expect(failures.map((e) => e.path)).toEqual(['messages:send']);
    // The dashboard's own queries are not logged.
    const all = await client.query(logs, {});
    expect(all.some((e) => e.path.startsWith('_system/'))).toBe(false);
    expect(all.some((e) => e.path === 'messages:list')).toBe(true);
  });

  it("shows a job's page and its graph going live to done; retries and re-runs", async () => {
    const server = await startServer(driver, { app: 'pools' });
    const client = asAdmin(connect(server));
    const ids = await client.mutation(diamond, {});
    const graphs: Array<{ nodes: Node[] }> = [];
    client.onUpdate(pools.graph, { id: ids.d! }, (graph) => graphs.push(graph));
    await expect
      .poll(() => graphs.at(-1)?.nodes.every((node) => node.state === 'finished'), {
        timeout: 10_000,
      })
      .toBe(true);
    const final = graphs.at(-1)! as { nodes: Node[]; edges: unknown[] };
    expect(final.nodes.map((node) => node.id).sort()).toEqual(Object.values(ids).sort());
    expect(final.edges).toHaveLength(4);
    // Seen before the end: some node was not finished yet.
    expect(graphs.some((graph) => graph.nodes.some((node) => node.state !== 'finished'))).toBe(
      true,
    );
    const a = await client.query(pools.job, { id: ids.a! });
    expect(a).toMatchObject({ state: 'finished', dependsOn: [] });
    // When its last attempt ran stays on record.
    expect(a!.startedAt).toBeGreaterThanOrEqual(a!.enqueuedAt);
    expect(a!.finishedAt).toBeGreaterThanOrEqual(a!.startedAt!);
    expect(a!.dependents.sort()).toEqual([ids.b, ids.c].sort());
    expect(a!.argsBytes).toBeGreaterThan(0);
    expect(a!.resultBytes).toBeGreaterThan(0);

    // Re-run downstream of b: b and d run again.
    expect(await client.mutation(pools.rerun, { id: ids.b! })).toBe(2);
    await expect
      .poll(async () => (await client.query(pools.job, { id: ids.d! }))?.state, { timeout: 10_000 })
      .toBe('finished');

    // A failed job, retried from its page once the cause is gone.
    await client.mutation(setSwitch, { name: 'broken', on: true });
    const chain = await client.mutation(failingChain, { switch: 'broken' });
    await expect
      .poll(async () => (await client.query(pools.job, { id: chain.bad! }))?.state, {
        timeout: 10_000,
      })
      .toBe('failed');
    await client.mutation(setSwitch, { name: 'broken', on: false });
    // bad, and the child and grandchild that failed with it, run again.
    expect(await client.mutation(pools.retry, { ids: [chain.bad!] })).toBe(3);
    await expect
      .poll(async () => (await client.query(pools.job, { id: chain.grandchild! }))?.state, {
        timeout: 10_000,
      })
      .toBe('finished');
    await expect(client.mutation(pools.retry, { ids: ['nonsense'] })).rejects.toThrow(
      /No pool job has the id "nonsense"/,
    );

    const seconds = await client.query(pools.stats, { pool: 'graph', seconds: 60 });
    expect(seconds).toHaveLength(60);
    const total = (key: 'started' | 'succeeded' | 'failed') =>
      seconds.reduce((sum, second) => sum + second[key], 0);
    expect(total('started')).toBeGreaterThanOrEqual(4 + 2 + 3 + 1);
    expect(total('failed')).toBeGreaterThanOrEqual(1);
  });

  it('measures start latency from when a job was ready, and parallelism in use', async () => {
    const server = await startServer(driver, { app: 'pools' });
    const client = asAdmin(connect(server));
    const poolList = ref<
      'query',
      Record<string, never>,
      Array<{ name: string; inUse: number; maxParallelism: number }>
    >('_system/pools:pools');
    const busy: number[] = [];
    client.onUpdate(poolList, {}, (list) =>
      busy.push(list.find((pool) => pool.name === 'narrow')?.inUse ?? 0),
    );
    // Nine jobs of 100 ms through three slots: the last three wait about 200 ms to start.
    await client.mutation(enqueueWork, { pool: 'narrow', label: 'slow', ms: 100, count: 9 });
    await expect
      .poll(
        async () =>
          (await client.query(pools.stats, { pool: 'narrow', seconds: 30 })).reduce(
            (sum, second) => sum + second.succeeded,
            0,
          ),
        { timeout: 10_000 },
      )
      .toBe(9);
    const seconds = await client.query(pools.stats, { pool: 'narrow', seconds: 30 });
    const p99 = Math.max(...seconds.map((second) => second.latencyP99Ms ?? 0));
    expect(p99).toBeGreaterThanOrEqual(150);
    expect(Math.max(...busy)).toBeGreaterThan(0);
    expect(Math.max(...busy)).toBeLessThanOrEqual(3);
  });

  it('reports health live and serves the same figures to Prometheus', async () => {
    const server = await startServer(driver, { app: 'pools' });
    const client = asAdmin(connect(server));
    const reports: Status[] = [];
    client.onUpdate(status, {}, (report) => reports.push(report));
    await expect.poll(() => reports.length).toBeGreaterThan(0);
    const first = reports.at(-1)!;
    expect(first.driver).toBe(driver.name === 'sqlite' ? 'sqlite' : 'postgres');
    expect(first.servers).toMatchObject([{ self: true, pid: process.pid }]);
    // Which code it runs (the hash the fleet guard records).
    expect(first.servers[0]?.code).toMatch(/^[0-9a-f]{16}$/);
    expect(first.connections).toBe(1);
    expect(first.subscriptions).toBe(1);
    await client.mutation(diamond, {});
    // Pushed without a request: the commit count moves on.
    await expect
      .poll(() => reports.at(-1)!.commits, { timeout: 5000 })
      .toBeGreaterThan(first.commits);

    const refused = await fetch(`${server.url}/metrics`);
    expect(refused.status).toBe(401);
    // Operator routes take the admin key as Bearer or Convex, the scheme in any case.
    const statusOf = async (path: string, authorization: string) =>
      (await fetch(`${server.url}${path}`, { headers: { Authorization: authorization } })).status;
    for (const path of ['/metrics', '/api/sleigh/pools/graph/failed']) {
      for (const scheme of ['Bearer', 'bearer', 'Convex', 'CONVEX']) {
        expect(await statusOf(path, `${scheme} ${ADMIN_KEY}`), `${path} ${scheme}`).toBe(200);
      }
      expect(await statusOf(path, `Bearer ${ADMIN_KEY}x`), path).toBe(401);
      expect(await statusOf(path, ADMIN_KEY), path).toBe(401);
    }
    const metrics = await fetch(`${server.url}/metrics`, {
      headers: { Authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await metrics.text();
    expect(text).toMatch(/^sleigh_servers 1$/m);
    expect(text).toMatch(/^sleigh_functions_left_to_other_servers 0$/m);
    expect(text).toMatch(/^sleigh_connections 1$/m);
    expect(text).toMatch(/^sleigh_pool_max_parallelism\{pool="graph"\} 4$/m);
    expect(text).toMatch(
      /^sleigh_function_executions_total\{kind="mutation",outcome="success"\} \d+$/m,
    );
    expect(text).toMatch(/^sleigh_commits_total \d+$/m);
    expect(text).toMatch(/^sleigh_mutation_conflicts_total \d+$/m);
    expect(text).toMatch(/^sleigh_mutation_first_attempts_queued_total \d+$/m);
    expect(text).toMatch(/^sleigh_pool_paused\{pool="graph"\} 0$/m);

    // Paused by an operator, the pool's waiting jobs are no lag: they wait on purpose.
    const admin = (path: string, method = 'POST') =>
      fetch(`${server.url}${path}`, { method, headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
    const paused = await admin('/api/sleigh/pools/graph/pause');
    expect(await paused.json()).toEqual({ paused: true, wasPaused: false });
    expect((await admin('/api/sleigh/pools/graph/pause', 'GET')).status).toBe(405);
    expect((await admin('/api/sleigh/pools/nowhere/pause')).status).toBe(404);
    await client.mutation(diamond, {});
    // (The status is computed once a second: wait for one well after the enqueue.)
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await client.query(status, {})).jobLagMs).toBeLessThan(1000);
    const whilePaused = await (await admin('/metrics', 'GET')).text();
    expect(whilePaused).toMatch(/^sleigh_pool_paused\{pool="graph"\} 1$/m);
    const resumed = await admin('/api/sleigh/pools/graph/resume');
    expect(await resumed.json()).toEqual({ paused: false, wasPaused: true });
  });
});

describe('the dashboard files', () => {
  it('serves the built app under /dashboard/, routes to index.html, and stays inside', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sleigh-dashboard-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Sleigh</title>');
    writeFileSync(join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
    const server = await startServer(DRIVERS[0]!, { dashboardDir: dir });
    const get = (path: string) => fetch(`${server.url}${path}`, { redirect: 'manual' });

    const bare = await get('/dashboard');
    expect(bare.status).toBe(302);
    expect(bare.headers.get('location')).toBe('/dashboard/');
    const index = await get('/dashboard/');
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    expect(await index.text()).toContain('<title>Sleigh</title>');
    // The page holds the admin key: only its own code runs, and no other site may frame it.
    expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(index.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(index.headers.get('x-frame-options')).toBe('DENY');
    expect(index.headers.get('referrer-policy')).toBe('no-referrer');
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    const route = await get('/dashboard/data/messages');
    expect(await route.text()).toContain('<title>Sleigh</title>');
    const script = await get('/dashboard/assets/app-1234.js');
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect(script.headers.get('cache-control')).toMatch(/immutable/);
    const escape = await get('/dashboard/..%2F..%2Fpackage.json');
    expect(await escape.text()).toContain('<title>Sleigh</title>');
    // An asset that is not there (one of an older build) is not answered with the page...
    const gone = await get('/dashboard/assets/app-0000.js');
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toMatch(/text\/plain/);
    // ...while a route whose function path holds a dot still is.
    const dotted = await get('/dashboard/functions/legacy.js:default');
    expect(await dotted.text()).toContain('<title>Sleigh</title>');

    const unbuilt = await startServer(DRIVERS[0]!);
    const missing = await fetch(`${unbuilt.url}/dashboard/`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toMatch(/dashboard is not built/);
  });
});
