/**
 * The sync protocol at the frame level, with raw sockets: what a misbehaving or malicious client
 * gets back, and that everybody else keeps being served.
 */
import { makeFunctionReference } from 'convex/server';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connect, DRIVERS, startServer } from './test-server.js';
import type { SleighServer } from './server.js';

const counter = makeFunctionReference<'query', { name: string }, number>('bank:counter');
const increment = makeFunctionReference<'mutation', { name: string }, number>('bank:increment');

interface RawSocket {
  readonly ws: WebSocket;
  readonly messages: Array<Record<string, unknown>>;
  readonly closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  next(
    predicate: (message: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

async function raw(server: SleighServer, path = '/api/1.48.0/sync'): Promise<RawSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`);
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer) => {
    messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('error', () => undefined);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    closed,
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    next: async (predicate, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(predicate);
        if (found !== undefined) return found;
        if (Date.now() > deadline)
          throw new Error(`No matching message; got ${JSON.stringify(messages).slice(0, 500)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

const connectFrame = (sessionId = crypto.randomUUID()) => ({
  type: 'Connect',
  sessionId,
  connectionCount: 0,
  lastCloseReason: null,
  clientTs: Date.now(),
});

describe.each(DRIVERS)('sync protocol on $name', (driver) => {
  it('answers a raw client: subscribe, mutate, Transition with versions, then ping when idle', async () => {
    const server = await startServer(driver, { pingAfterMs: 200 });
    const socket = await raw(server);
    socket.send(connectFrame());
    socket.send({
      type: 'ModifyQuerySet',
      baseVersion: 0,
      newVersion: 1,
      modifications: [
        { type: 'Add', queryId: 0, udfPath: 'bank:counter', args: [{ name: 'raw' }] },
      ],
    });
    const first = await socket.next((m) => m.type === 'Transition');
    expect(first.startVersion).toEqual({ querySet: 0, identity: 0, ts: 'AAAAAAAAAAA=' });
    expect(first.modifications).toEqual([
      { type: 'QueryUpdated', queryId: 0, value: 0, logLines: [], journal: null },
    ]);
    socket.send({
      type: 'Mutation',
      requestId: 0,
      udfPath: 'bank:increment',
      args: [{ name: 'raw' }],
    });
    const response = await socket.next((m) => m.type === 'MutationResponse');
    expect(response).toMatchObject({ requestId: 0, success: true, result: 1 });
    const ts = Buffer.from(response.ts as string, 'base64').readBigUInt64LE();
    const after = await socket.next(
      (m) =>
        m.type === 'Transition' &&
        Buffer.from((m.endVersion as { ts: string }).ts, 'base64').readBigUInt64LE() >= ts,
    );
    expect(after.startVersion).toEqual(first.endVersion);
    expect(after.modifications).toEqual([
      { type: 'QueryUpdated', queryId: 0, value: 1, logLines: [], journal: null },
    ]);
    await socket.next((m) => m.type === 'Ping', 3000);
    socket.ws.close();
  });

  it('gives clear errors for bad frames, closing only that socket, while others are served', async () => {
    const server = await startServer(driver);
    const bystander = connect(server);
    const cases: Array<[string, (socket: RawSocket) => void, RegExp]> = [
      ['malformed JSON', (s) => s.send('{"type": "Connect",'), /not valid JSON/],
      ['not an object', (s) => s.send('[1,2,3]'), /must be a JSON object/],
      ['an unknown type', (s) => s.send({ type: 'Launch' }), /Unknown message type "Launch"/],
      [
        'a long unknown type, not echoed whole',
        (s) => s.send({ type: 'L'.repeat(100_000) }),
        /^Unknown message type "L{900,1000}… \(cut\)$/,
      ],
      [
        'a message before Connect',
        (s) => s.send({ type: 'Mutation', requestId: 1, udfPath: 'x:y', args: [{}] }),
        /first message must be Connect/,
      ],
      [
        'a wrong baseVersion',
        (s) => {
          s.send(connectFrame());
          s.send({ type: 'ModifyQuerySet', baseVersion: 5, newVersion: 6, modifications: [] });
        },
        /baseVersion 5 does not match the current query set version 0/,
      ],
      [
        'args that are not one object',
        (s) => {
          s.send(connectFrame());
          s.send({ type: 'Mutation', requestId: 1, udfPath: 'bank:increment', args: 'nope' });
        },
        /Mutation\.args must be an array holding one arguments object/,
      ],
      ['a binary frame', (s) => s.ws.send(Buffer.from([1, 2, 3])), /Binary frames/],
    ];
    for (const [label, act, message] of cases) {
      const socket = await raw(server);
      act(socket);
      const fatal = await socket.next((m) => m.type === 'FatalError');
      expect(fatal.error, label).toMatch(message);
      expect((await socket.closed).code, label).toBe(1008);
    }
    // A 50 MB frame is refused by size before it is read; the socket closes with 1009.
    const huge = await raw(server);
    huge.send(JSON.stringify({ type: 'Connect', padding: 'x'.repeat(50 * 1024 * 1024) }));
    expect((await huge.closed).code).toBe(1009);
    // Arguments that fail validation and unknown functions are errors of that call only.
    const socket = await raw(server);
    socket.send(connectFrame());
    socket.send({
      type: 'Mutation',
      requestId: 7,
      udfPath: 'bank:increment',
      args: [{ name: 42 }],
    });
    socket.send({
      type: 'ModifyQuerySet',
      baseVersion: 0,
      newVersion: 1,
      modifications: [{ type: 'Add', queryId: 3, udfPath: 'nope:missing', args: [{}] }],
    });
    expect(await socket.next((m) => m.type === 'MutationResponse')).toMatchObject({
      requestId: 7,
      success: false,
      result: expect.stringMatching(
        /Invalid arguments for bank:increment: `name`: expected string/,
      ) as unknown,
    });
    const failed = await socket.next((m) => m.type === 'Transition');
    expect(failed.modifications).toEqual([
      expect.objectContaining({
        type: 'QueryFailed',
        queryId: 3,
        errorMessage: expect.stringMatching(
          /Could not find public query "nope:missing"/,
        ) as unknown,
      }),
    ]);
    expect(socket.ws.readyState).toBe(WebSocket.OPEN);
    // The well-behaved client noticed nothing.
    expect(await bystander.mutation(increment, { name: 'ok' })).toBe(1);
    expect(await bystander.query(counter, { name: 'ok' })).toBe(1);
  });

  it('closes a socket whose client stops reading, before the server holds too much for it', async () => {
    const logged: string[] = [];
    const server = await startServer(driver, {
      maxSocketBacklogBytes: 1024 * 1024,
      log: (message) => logged.push(message),
    });
    const bystander = connect(server);
    const socket = await raw(server);
    socket.send(connectFrame());
    // It stops reading; each query added sends it a Transition of about 500 kB.
    socket.ws.pause();
    const big = 'x'.repeat(500_000);
    for (let version = 0; version < 60; version++) {
      socket.send({
        type: 'ModifyQuerySet',
        baseVersion: version,
        newVersion: version + 1,
        modifications: [
          {
            type: 'Add',
            queryId: version,
            udfPath: 'values:echo',
            args: [{ value: `${version}${big}` }],
          },
        ],
      });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await expect
      .poll(() => logged.some((line) => /client is not reading/.test(line)), { timeout: 10_000 })
      .toBe(true);
    socket.ws.resume();
    expect(await socket.closed).toEqual({
      code: 1013,
      reason: 'The client is not reading what the server sends; reconnect',
    });
    // Fewer than all 60 Transitions were ever queued for it.
    expect(socket.messages.filter((message) => message.type === 'Transition').length).toBeLessThan(
      60,
    );
    expect(await bystander.mutation(increment, { name: 'still' })).toBe(1);
  });

  it('closes a socket that never sends Connect', async () => {
    const server = await startServer(driver, { connectTimeoutMs: 300 });
    const socket = await raw(server);
    const fatal = await socket.next((message) => message.type === 'FatalError');
    expect(fatal.error).toBe('No Connect message within 300 ms of opening the socket');
    expect((await socket.closed).code).toBe(1008);
  });

  it('refuses a client that has seen a newer state than the server (it would go back in time)', async () => {
    const server = await startServer(driver);
    const socket = await raw(server);
    const future = Buffer.alloc(8);
    future.writeBigUInt64LE(2n ** 62n);
    socket.send({ ...connectFrame(), maxObservedTimestamp: future.toString('base64') });
    const closed = await socket.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/ServerBehindClient/);
  });

  it('fuzz: thousands of random and mutated frames never stop the server serving a normal client', async () => {
    const server = await startServer(driver);
    const valid = [
      connectFrame(),
      {
        type: 'ModifyQuerySet',
        baseVersion: 0,
        newVersion: 1,
        modifications: [
          { type: 'Add', queryId: 0, udfPath: 'bank:counter', args: [{ name: 'f' }] },
        ],
      },
      { type: 'Mutation', requestId: 0, udfPath: 'bank:increment', args: [{ name: 'f' }] },
      {
        type: 'Action',
        requestId: 1,
        udfPath: 'rules:echoAction',
        args: [{ value: { $integer: 'AQAAAAAAAAA=' } }],
      },
      { type: 'Authenticate', tokenType: 'Admin', baseVersion: 0, value: 'wrong' },
    ];
    const mutated = fc.oneof(
      fc.json(),
      fc.string(),
      fc.constantFrom(...valid).chain((frame) =>
        fc
          .record({
            field: fc.constantFrom(...Object.keys(frame)),
            value: fc.oneof(fc.jsonValue(), fc.constant(undefined)),
          })
          .map(({ field, value }) => JSON.stringify({ ...frame, [field]: value })),
      ),
      fc.constantFrom(...valid).map((frame) => JSON.stringify(frame)),
    );
    const frames = fc.sample(fc.array(mutated, { minLength: 1, maxLength: 12 }), 300);
    let sent = 0;
    for (let i = 0; i < frames.length; i += 25) {
      await Promise.all(
        frames.slice(i, i + 25).map(async (batch) => {
          const socket = await raw(server);
          socket.send(connectFrame());
          for (const frame of batch) {
            if (socket.ws.readyState !== WebSocket.OPEN) break;
            socket.send(frame);
            sent++;
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
          socket.ws.terminate();
        }),
      );
    }
    expect(sent).toBeGreaterThan(1000);
    const client = connect(server);
    const before = await client.query(counter, { name: 'after-fuzz' });
    expect(await client.mutation(increment, { name: 'after-fuzz' })).toBe(before + 1);
  });
});
