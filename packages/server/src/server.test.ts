import { makeFunctionReference } from 'convex/server';
import { ConvexError, type Value } from 'convex/values';
import { describe, expect, it } from 'vitest';
import {
  asAdmin,
  connect,
  DRIVERS,
  httpClient,
  nextValue,
  startServer,
  waitFor,
} from './test-server.js';

type Message = { _id: string; channel: string; author: string; body: string; likes?: number };

const api = {
  list: makeFunctionReference<'query', Record<string, never>, Message[]>('messages:list'),
  byChannel: makeFunctionReference<'query', { channel: string }, Message[]>('messages:byChannel'),
  send: makeFunctionReference<
    'mutation',
    { channel: string; author: string; body: string },
    string
  >('messages:send'),
  secretCount: makeFunctionReference<'query', { channel: string }, number>('messages:secretCount'),
  increment: makeFunctionReference<'mutation', { name: string }, number>('bank:increment'),
  counter: makeFunctionReference<'query', { name: string }, number>('bank:counter'),
  roundTrip: makeFunctionReference<
    'action',
    { channel: string },
    { count: number; echoed: bigint }
  >('rules:roundTrip'),
  storeValue: makeFunctionReference<'mutation', Record<string, Value>, string>('values:store'),
  echo: makeFunctionReference<'query', { value: Value }, Value>('values:echo'),
  remove: makeFunctionReference<'mutation', { id: string }, null>('messages:remove'),
  page: makeFunctionReference<
    'query',
    { channel: string; paginationOpts: { numItems: number; cursor: string | null } },
    { page: Message[]; isDone: boolean; continueCursor: string }
  >('messages:page'),
  allValues: makeFunctionReference<
    'query',
    Record<string, never>,
    Array<{ label: string; nested?: string }>
  >('values:all'),
};

describe.each(DRIVERS)('server on $name', (driver) => {
  it('pushes a subscribed query the changes another client makes', async () => {
    const server = await startServer(driver);
    const watcher = connect(server);
    const writer = connect(server);
    const first = await nextValue<Message[]>(
      (cb) => watcher.onUpdate(api.list, {}, cb),
      () => true,
    );
    expect(first).toEqual([]);
    const updated = nextValue<Message[]>(
      (cb) => watcher.onUpdate(api.list, {}, cb),
      (v) => v.length === 1,
    );
    await writer.mutation(api.send, { channel: 'general', author: 'ann', body: 'hello' });
    expect((await updated).map((m) => m.body)).toEqual(['hello']);
  });

  it('keeps a subscribed page where it ended, so documents written into it are never lost', async () => {
    const server = await startServer(driver);
    const writer = connect(server);
    for (const body of ['m1', 'm2', 'm3', 'm4']) {
      await writer.mutation(api.send, { channel: 'pin', author: 'ann', body });
    }
    const reader = connect(server);
    type Page = { page: Message[]; isDone: boolean; continueCursor: string };
    const pages: Array<Page | undefined> = [];
    const watch = (index: number, cursor: string | null) =>
      reader.onUpdate(
        api.page,
        { channel: 'pin', paginationOpts: { numItems: 2, cursor } },
        (value) => (pages[index] = value),
      );
    watch(0, null);
    await waitFor(() => pages[0] !== undefined);
    watch(1, pages[0]!.continueCursor);
    await waitFor(() => pages[1] !== undefined);
    const bodies = () => pages.flatMap((page) => page?.page.map((m) => m.body) ?? []);
    expect(bodies()).toEqual(['m4', 'm3', 'm2', 'm1']);
    // Newest first: m5 lands in the first page, which grows rather than pushing m3 out of it
    // (the second page starts after m3, so a shifted first page would lose m3 from the list).
    await writer.mutation(api.send, { channel: 'pin', author: 'ann', body: 'm5' });
    await waitFor(() => bodies().length === 5);
    expect(bodies()).toEqual(['m5', 'm4', 'm3', 'm2', 'm1']);
    // A document removed from the first page leaves it one shorter; nothing else moves.
    const m4 = pages[0]!.page.find((m) => m.body === 'm4')!;
    await writer.mutation(api.remove, { id: m4._id });
    await waitFor(() => bodies().length === 4);
    expect(bodies()).toEqual(['m5', 'm3', 'm2', 'm1']);
    expect(pages[0]!.page.map((m) => m.body)).toEqual(['m5', 'm3']);
  });

  it('reads its own writes: when a mutation resolves, the subscription already shows it', async () => {
    const server = await startServer(driver);
    const client = connect(server);
    const values: Message[][] = [];
    const unsubscribe = client.onUpdate(api.byChannel, { channel: 'ryw' }, (v) => values.push(v));
    await nextValue<Message[]>(
      (cb) => client.onUpdate(api.byChannel, { channel: 'ryw' }, cb),
      () => true,
    );
    for (let i = 0; i < 5; i++) {
      await client.mutation(api.send, { channel: 'ryw', author: 'me', body: `m${i}` });
      const current = client.client.localQueryResult('messages:byChannel', {
        channel: 'ryw',
      }) as Message[];
      expect(current.map((m) => m.body)).toEqual(Array.from({ length: i + 1 }, (_, j) => `m${j}`));
    }
    unsubscribe();
    expect(values.length).toBeGreaterThan(0);
  });

  it('applies a mutation exactly once when the socket drops before its response', async () => {
    let dropped = 0;
    const server = await startServer(driver, {
      faults: {
        beforeMutationResponse: () => {
          // Cut the first two responses: the client reconnects and resends each time.
          if (dropped < 2) {
            dropped++;
            return 'drop';
          }
          return undefined;
        },
      },
    });
    const client = connect(server);
    const result = await client.mutation(api.increment, { name: 'once' });
    expect(dropped).toBe(2);
    expect(result).toBe(1);
    const http = httpClient(server);
    expect(await http.query(api.counter, { name: 'once' })).toBe(1);
    // And the client goes on working on its new socket.
    expect(await client.mutation(api.increment, { name: 'once' })).toBe(2);
  });

  it('wakes only the subscriptions a write touches: 20 clients, one re-run', async () => {
    const server = await startServer(driver);
    const clients = Array.from({ length: 20 }, () => connect(server));
    const updates = new Array<number>(20).fill(0);
    const latest: Message[][] = [];
    const unsubscribes = clients.map((client, i) =>
      client.onUpdate(api.byChannel, { channel: `c${i}` }, (value) => {
        updates[i]!++;
        latest[i] = value;
      }),
    );
    await waitFor(() => updates.every((count) => count > 0));
    await server.subscriptions.settled();
    const runsBefore = server.subscriptions.runs;
    const before = [...updates];
    await clients[3]!.mutation(api.send, { channel: 'c7', author: 'x', body: 'only c7' });
    await waitFor(() => latest[7]?.length === 1);
    await server.subscriptions.settled();
    expect(server.subscriptions.runs - runsBefore).toBe(1);
    updates.forEach((count, i) => {
      if (i === 7) expect(count).toBe(before[i]! + 1);
      else expect(count, `client ${i}`).toBe(before[i]);
    });
    unsubscribes.forEach((u) => u());
  });

  it('shares one query run among identical subscriptions', async () => {
    const server = await startServer(driver);
    const clients = Array.from({ length: 5 }, () => connect(server));
    const latest: Message[][] = [];
    const keep = clients.map((c, i) => c.onUpdate(api.list, {}, (value) => (latest[i] = value)));
    await waitFor(() => latest.filter(Boolean).length === 5);
    await server.subscriptions.settled();
    const runs = server.subscriptions.runs;
    await clients[0]!.mutation(api.send, { channel: 'x', author: 'y', body: 'z' });
    await waitFor(() => latest.every((value) => value.length === 1));
    await server.subscriptions.settled();
    expect(server.subscriptions.runs - runs).toBe(1);
    keep.forEach((u) => u());
  });

  it('carries ConvexError data to the client, and refuses internal functions without the admin key', async () => {
    const server = await startServer(driver);
    const client = connect(server);
    const error = await client
      .mutation(api.send, { channel: 'c', author: 'a', body: '' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConvexError);
    expect((error as ConvexError<Value>).data).toEqual({ code: 'EMPTY', channel: 'c' });
    await expect(client.query(api.secretCount, { channel: 'c' })).rejects.toThrow(
      /Could not find public query "messages:secretCount"/,
    );
    const admin = asAdmin(connect(server));
    expect(await admin.query(api.secretCount, { channel: 'c' })).toBe(0);
    const http = httpClient(server);
    await expect(http.query(api.secretCount, { channel: 'c' })).rejects.toThrow(
      /Could not find public query/,
    );
    asAdmin(http);
    expect(await http.query(api.secretCount, { channel: 'c' })).toBe(0);
  });

  it('refuses a wrong admin key and closes, so the same client can authenticate again', async () => {
    const server = await startServer(driver);
    const client = asAdmin(connect(server), 'not-the-admin-key');
    await expect(client.query(api.secretCount, { channel: 'c' })).rejects.toThrow(
      /Could not find public query "messages:secretCount"/,
    );
    asAdmin(client);
    // Other arguments: the client answers the same query from the failure it still holds.
    expect(await client.query(api.secretCount, { channel: 'd' })).toBe(0);
  });

  it('runs actions that call queries and mutations', async () => {
    const server = await startServer(driver);
    const client = connect(server);
    const result = await client.action(api.roundTrip, { channel: 'act' });
    expect(result.count).toBe(1);
    expect(result.echoed).toBe(14n);
  });

  it('splits a Transition over 5 MB into chunks the client reassembles', async () => {
    const server = await startServer(driver);
    const client = connect(server);
    const big = 'x'.repeat(900_000);
    for (let i = 0; i < 7; i++)
      await client.mutation(api.storeValue, { label: `big${i}`, nested: big });
    const values = await nextValue<Array<{ label: string; nested?: string }>>(
      (cb) => client.onUpdate(api.allValues, {}, cb),
      (v) => v.length === 7,
    );
    expect(values.map((v) => v.nested?.length)).toEqual(new Array(7).fill(900_000));
  });

  it('serves the HTTP API in both formats, with errors as the clients expect', async () => {
    const server = await startServer(driver);
    const http = httpClient(server);
    const id = await http.mutation(api.send, { channel: 'h', author: 'a', body: 'via http' });
    expect(typeof id).toBe('string');
    expect((await http.query(api.byChannel, { channel: 'h' })).map((m) => m.body)).toEqual([
      'via http',
    ]);
    expect((await http.action(api.roundTrip, { channel: 'h2' })).echoed).toBe(14n);
    const error = await http
      .mutation(api.send, { channel: 'h', author: 'a', body: '' })
      .catch((e: unknown) => e);
    expect((error as ConvexError<Value>).data).toEqual({ code: 'EMPTY', channel: 'h' });

    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const plain = await post('/api/query', {
      path: 'values:echo',
      args: { value: 5 },
      format: 'json',
    });
    expect(await plain.json()).toEqual({ status: 'success', value: 5, logLines: [] });
    const run = await post('/api/run/messages/byChannel', { args: { channel: 'h' } });
    expect(((await run.json()) as { value: Message[] }).value[0]!.body).toBe('via http');
    const viaFunction = await post('/api/function', {
      path: 'bank:increment',
      args: { name: 'f' },
    });
    expect(await viaFunction.json()).toEqual({ status: 'success', value: 1, logLines: [] });
    const batch = await post('/api/query_batch', {
      queries: [
        { path: 'bank:counter', args: { name: 'f' } },
        { path: 'nope:nothing', args: {} },
      ],
    });
    const results = ((await batch.json()) as { results: Array<{ status: string }> }).results;
    expect(results.map((r) => r.status)).toEqual(['success', 'error']);
    const ts = ((await (await post('/api/query_ts', {})).json()) as { ts: string }).ts;
    const atTs = await post('/api/query_at_ts', { path: 'bank:counter', args: { name: 'f' }, ts });
    expect(await atTs.json()).toMatchObject({ status: 'success', value: 1 });
    const get = await fetch(
      `${server.url}/api/query?path=bank:counter&args=${encodeURIComponent('{"name":"f"}')}`,
    );
    expect(await get.json()).toMatchObject({ status: 'success', value: 1 });

    const failed = await post('/api/query', { path: 'bank:counter', args: { name: 7 } });
    expect(failed.status).toBe(560);
    expect(((await failed.json()) as { errorMessage: string }).errorMessage).toMatch(
      /`name`: expected string/,
    );
    const malformed = await post('/api/query', '{not json');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'BadJsonBody' });
    const badKey = await post(
      '/api/query',
      { path: 'bank:counter', args: { name: 'f' } },
      { Authorization: 'Convex wrong' },
    );
    expect(badKey.status).toBe(401);
    const info = (await (await fetch(`${server.url}/instance_info`)).json()) as Record<
      string,
      unknown
    >;
    expect(info).toMatchObject({ version: '0.1.0', driver: driver.name });
    expect(typeof info.uptimeSeconds).toBe('number');
    // Health checks often ask with HEAD: the GET routes answer it, without a body.
    const head = await fetch(`${server.url}/version`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(`${server.url}/nowhere`)).status).toBe(404);
  });

  it('answers malformed HTTP requests with 400s and too large ones with 413, and keeps serving', async () => {
    const logged: string[] = [];
    const server = await startServer(driver, { log: (message) => logged.push(message) });
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const counter = { path: 'bank:counter', args: { name: 'n' } };
    const put = await fetch(`${server.url}/api/mutation`, { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('POST, OPTIONS');
    expect(await put.json()).toEqual({
      code: 'MethodNotAllowed',
      message: '/api/mutation takes POST, not PUT',
    });
    const badEscape = await post('/api/run/bank/%E0%A4%A', {});
    expect(badEscape.status).toBe(400);
    expect(await badEscape.json()).toEqual({
      code: 'BadPath',
      message: 'The path segment "%E0%A4%A" holds a malformed percent-escape',
    });
    for (const ts of [true, '', '-5', '1e3', '100000000000000000000000000000']) {
      const atTs = await post('/api/query_at_ts', { ...counter, ts });
      expect(atTs.status, JSON.stringify(ts)).toBe(400);
      expect(await atTs.json()).toMatchObject({ code: 'BadTimestamp' });
    }
    const latest = ((await (await post('/api/query_ts', {})).json()) as { ts: string }).ts;
    const future = await post('/api/query_at_ts', { ...counter, ts: `${BigInt(latest) + 1000n}` });
    expect(await future.json()).toMatchObject({
      code: 'BadTimestamp',
      message: expect.stringMatching(/is later than this deployment's latest timestamp/) as unknown,
    });
    // 21 MiB: refused, and its connection closed rather than offered for the next request.
    const tooLarge = await post('/api/query', 'x'.repeat(21 * 1024 * 1024));
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get('connection')).toBe('close');
    for (let i = 0; i < 3; i++) {
      expect(await (await post('/api/query', counter)).json()).toMatchObject({ value: 0 });
    }
    // Arguments nested deeper than decoding can recurse: a clear refusal, over HTTP and sync.
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const nested = await post('/api/query', `{"path":"values:echo","args":{"value":${deep}}}`);
    expect(nested.status).toBe(560);
    expect(((await nested.json()) as { errorMessage: string }).errorMessage).toBe(
      'Invalid arguments for values:echo: they are nested more than 64 levels deep',
    );
    // Other fields nested too deeply to quote in the error: still a 400 naming the field.
    const deepArray = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const deepFormat = await post(
      '/api/query',
      `{${JSON.stringify(counter).slice(1, -1)},"format":${deepArray}}`,
    );
    expect(deepFormat.status).toBe(400);
    expect(await deepFormat.json()).toEqual({
      code: 'BadFormat',
      message:
        'format must be "convex_encoded_json" or "json", got an array nested too deeply to show',
    });
    const deepTs = await post(
      '/api/query_at_ts',
      `{${JSON.stringify(counter).slice(1, -1)},"ts":${deepArray}}`,
    );
    expect(deepTs.status).toBe(400);
    expect(await deepTs.json()).toMatchObject({ code: 'BadTimestamp' });
    // Over sync the limit holds too (100 levels: the client itself encodes recursively).
    let hundred: Value = 1;
    for (let i = 0; i < 100; i++) hundred = { a: hundred };
    const client = connect(server);
    await expect(client.query(api.echo, { value: hundred })).rejects.toThrow(
      'Invalid arguments for values:echo: they are nested more than 64 levels deep',
    );
    expect(await client.query(api.counter, { name: 'n' })).toBe(0);
    expect(logged).toEqual([]);
  });

  it('answers 500, and logs why, when a request fails inside the server', async () => {
    const logged: string[] = [];
    const server = await startServer(driver, { log: (message) => logged.push(message) });
    // The database goes away under the server (an outage): reading its timestamp fails.
    await server.engine.store.close();
    const answer = await fetch(`${server.url}/api/query_ts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(10_000),
    });
    expect(answer.status).toBe(500);
    expect(await answer.json()).toEqual({
      code: 'InternalServerError',
      message: 'The server failed to handle this request',
    });
    // (The job runner, finding the store gone too, logs its own failures.)
    expect(logged.filter((line) => line.startsWith('HTTP'))).toEqual([
      expect.stringMatching(/^HTTP POST \/api\/query_ts failed: .*closed/) as unknown,
    ]);
  });
});

describe('two servers on one PostgreSQL', () => {
  const postgres = DRIVERS.find((driver) => driver.name === 'postgres')!;

  it("re-runs only the other server's subscriptions whose read set a commit wrote", async () => {
    const place = postgres.place();
    const a = await startServer(postgres, { place });
    const b = await startServer(postgres, { place });
    const watcher = connect(b);
    const latest: Array<Message[] | undefined> = [];
    for (let i = 0; i < 5; i++) {
      watcher.onUpdate(api.byChannel, { channel: `p${i}` }, (value) => (latest[i] = value));
    }
    await waitFor(() => latest.filter((value) => value !== undefined).length === 5);
    await b.subscriptions.settled();
    const runsBefore = b.subscriptions.runs;
    await httpClient(a).mutation(api.send, { channel: 'p2', author: 'a', body: 'from a' });
    await waitFor(() => latest[2]?.length === 1);
    await b.subscriptions.settled();
    // Of b's five subscriptions, the one whose read set a's commit wrote re-ran; no other.
    expect(b.subscriptions.runs - runsBefore).toBe(1);
    expect(latest[2]!.map((m) => m.body)).toEqual(['from a']);
    expect(latest.filter((value) => value!.length > 0)).toHaveLength(1);
  });
});
