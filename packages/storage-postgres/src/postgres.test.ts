import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { encodeKey, prefixEnd, StorageError, StorageErrorCode } from '@sleigh/storage';
import { makeDocument, seed, writeWithRetries } from '@sleigh/storage/conformance';
import { databaseUrl, startPostgresCluster } from '@sleigh/testing';
import pg from 'pg';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { decodeWrites } from './commit-feed.js';
import { openPostgresStore, PostgresStore } from './store.js';
import { traceStatements } from './test-trace.js';

/** Counts the writes to the sockets of the store's pooled connections. */
function countSocketWrites(store: PostgresStore): { count: number } {
  const writes = { count: 0 };
  const pool = (store as unknown as { pool: pg.Pool }).pool;
  const counted = new WeakSet<object>();
  const count = (client: pg.PoolClient) => {
    const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
    if (counted.has(socket)) return;
    counted.add(socket);
    // What a socket calls for each write it makes: one buffer, or several gathered.
    const hooks = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => void>;
    for (const method of ['_write', '_writev'] as const) {
      const original = hooks[method].bind(socket);
      hooks[method] = (...args) => {
        writes.count++;
        original(...args);
      };
    }
  };
  pool.on('acquire', count);
  onTestFinished(() => void pool.off('acquire', count));
  return writes;
}

function freshSchema(): string {
  const schema = `test_${randomBytes(6).toString('hex')}`;
  onTestFinished(async (context) => {
    if (context.task.result?.state !== 'fail')
      await PostgresStore.dropSchema(databaseUrl(), schema);
  });
  return schema;
}

describe('postgres store', () => {
  it('serializes transactions of two processes on one schema, ordering their commits', async () => {
    const schema = freshSchema();
    const a = await openPostgresStore({ connectionString: databaseUrl(), schema });
    const b = await openPostgresStore({ connectionString: databaseUrl(), schema });
    try {
      const [counter] = await seed(a, 'counters', [{ n: 0 }]);
      // b learns of the table the way a second server will: by reopening its catalog.
      await b.close();
      const b2 = await openPostgresStore({ connectionString: databaseUrl(), schema });
      const stamps: bigint[] = [];
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          writeWithRetries(i % 2 === 0 ? a : b2, async (tx) => {
            const doc = (await tx.get('counters', counter!._id))!;
            await tx.replace('counters', { ...doc, n: (doc.n as number) + 1 });
            return tx;
          }).then(async () =>
            stamps.push(await (i % 2 === 0 ? a : b2).read((tx) => tx.timestamp())),
          ),
        ),
      );
      expect((await b2.read((tx) => tx.get('counters', counter!._id)))?.n).toBe(30);
      expect((await a.read((tx) => tx.get('counters', counter!._id)))?.n).toBe(30);
      expect(new Set(stamps).size).toBeGreaterThan(1);
      await b2.close();
    } finally {
      await a.close();
    }
  });

  it('records each commit with its write set, and trims old records but never the newest', async () => {
    const schema = freshSchema();
    const store = await openPostgresStore({
      connectionString: databaseUrl(),
      schema,
      commitRetentionMs: 0,
    });
    try {
      await store.write((tx) => tx.createTable('t'));
      const number = store.catalog().requireTable('t').number;
      const doc = makeDocument(number, { n: 1 });
      const { commit } = await store.write((tx) => tx.insert('t', doc));
      const client = new pg.Client({ connectionString: databaseUrl() });
      await client.connect();
      try {
        const { rows } = await client.query<{ writes: Buffer }>(
          `SELECT writes FROM ${schema}.commits WHERE ts = $1`,
          [commit.ts.toString()],
        );
        const recorded = decodeWrites(rows[0]!.writes);
        expect(recorded.map((w) => [w.indexId, Buffer.from(w.key).toString('hex')])).toEqual(
          commit.writes.map((w) => [w.indexId, Buffer.from(w.key).toString('hex')]),
        );
        for (let i = 0; i < 1000; i++)
          await store.write((tx) => tx.insert('t', makeDocument(number, { i })));
        await store.close();
        const left = await client.query<{ n: number; newest: string }>(
          `SELECT count(*)::int AS n, max(ts)::text AS newest FROM ${schema}.commits`,
        );
        expect(left.rows[0]!.n).toBeLessThan(10);
        const reopened = await openPostgresStore({ connectionString: databaseUrl(), schema });
        expect((await reopened.read((tx) => tx.timestamp())).toString()).toBe(left.rows[0]!.newest);
        expect(await reopened.read((tx) => tx.count('t'))).toBe(1001);
        await reopened.close();
      } finally {
        await client.end();
      }
    } finally {
      await store.close();
    }
  });

  it('vacuums the index table after heavy churn, so a range emptied by it is quick to scan again', async () => {
    const client = new pg.Client({ connectionString: databaseUrl() });
    await client.connect();
    onTestFinished(() => client.end());
    /** A burst of jobs moving from pending to done; then the pages a scan of pending reads. */
    const churn = async (vacuumAfterKeys: number) => {
      const schema = freshSchema();
      const store = await openPostgresStore({
        connectionString: databaseUrl(),
        schema,
        vacuumAfterKeys,
      });
      onTestFinished(() => store.close());
      const jobs = await seed(store, 'jobs', [], { by_state: ['state'] });
      expect(jobs).toEqual([]);
      const number = store.catalog().requireTable('jobs').number;
      for (let batch = 0; batch < 5; batch++) {
        const docs = Array.from({ length: 1000 }, (_, i) =>
          makeDocument(number, { state: 'pending', i }),
        );
        await store.write((tx) => tx.insertMany('jobs', docs));
        await store.write((tx) =>
          tx.replaceMany(
            'jobs',
            docs.map((doc) => ({ ...doc, state: 'done' })),
          ),
        );
      }
      const index = store.catalog().requireIndex('jobs', 'by_state');
      return async () => {
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT doc FROM ${schema}.index_entries
            WHERE index_id = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT 1`,
          [
            index.id,
            Buffer.from(encodeKey(['pending'])),
            Buffer.from(prefixEnd(encodeKey(['pending']))),
          ],
        );
        const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
        return Number(/Buffers: shared hit=(\d+)/.exec(plan)?.[1] ?? 0);
      };
    };
    // Left to autovacuum, the 5,000 dead entries stay where the next scan has to walk them...
    const untouched = await churn(0);
    expect(await untouched()).toBeGreaterThan(20);
    // ...vacuumed after the churn, the range is as cheap as an empty one.
    const vacuumed = await churn(2000);
    await expect.poll(vacuumed, { timeout: 10_000, interval: 200 }).toBeLessThanOrEqual(4);
  });

  it('leaves the vacuum to autovacuum for a role that does not own the index table, saying so once', async () => {
    const schema = freshSchema();
    const owner = await openPostgresStore({ connectionString: databaseUrl(), schema });
    const [first] = await seed(owner, 'jobs', [{ state: 'pending' }], { by_state: ['state'] });
    const number = owner.catalog().requireTable('jobs').number;
    await owner.close();
    // A role that may use every table but create nothing and own nothing (as a DBA might grant
    // an application): it opens the store, and PostgreSQL would only warn at its VACUUM.
    const admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
    const role = `sleigh_guest_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'guest'`);
    onTestFinished(async () => {
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    });
    await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
    await admin.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA ${schema} TO ${role}`);
    const url = new URL(databaseUrl());
    url.username = role;
    url.password = 'guest';

    const logged: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((message: unknown) => {
      logged.push(String(message));
    });
    onTestFinished(() => spy.mockRestore());
    const guest = await openPostgresStore({
      connectionString: url.toString(),
      schema,
      vacuumAfterKeys: 500,
    });
    onTestFinished(() => guest.close());
    const refused = () => logged.filter((line) => line.includes('does not own it'));
    for (let round = 0; round < 3; round++) {
      const docs = Array.from({ length: 500 }, (_, i) => makeDocument(number, { state: 'new', i }));
      await guest.write((tx) => tx.insertMany('jobs', docs));
      await expect.poll(() => refused().length).toBe(1);
    }
    // The guest's writes went through all the same.
    expect((await guest.read((tx) => tx.get('jobs', first!._id)))?.state).toBe('pending');
    expect(logged.filter((line) => line.includes('churn failed'))).toEqual([]);
  });

  it('says clearly when the database cannot be reached', async () => {
    const url = new URL(databaseUrl());
    url.port = '1';
    const attempt = openPostgresStore({ connectionString: url.toString(), schema: 'nowhere' });
    await expect(attempt).rejects.toSatisfy((e) =>
      StorageError.is(e, StorageErrorCode.Unavailable),
    );
    await expect(attempt).rejects.toThrow(/Cannot open the PostgreSQL store \(schema "nowhere"\)/);
  });

  it('gives up on a server that accepts connections and never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onTestFinished(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const { port } = silent.address() as AddressInfo;
    const attempt = openPostgresStore({
      connectionString: `postgres://sleigh@127.0.0.1:${port}/silent`,
      schema: 'silent',
      connectTimeoutMs: 300,
    });
    await expect(attempt).rejects.toThrow(
      /Cannot open the PostgreSQL store \(schema "silent"\): no answer within 300 ms/,
    );
    expect(sockets.size).toBe(1);
  });

  it('tells whether a schema is absent, a Sleigh store or something else', async () => {
    const schema = freshSchema();
    expect(await PostgresStore.inspectSchema(databaseUrl(), schema)).toBe('absent');
    const store = await openPostgresStore({ connectionString: databaseUrl(), schema });
    await store.close();
    expect(await PostgresStore.inspectSchema(databaseUrl(), schema)).toBe('sleigh');
    await PostgresStore.dropSchema(databaseUrl(), schema);
    expect(await PostgresStore.inspectSchema(databaseUrl(), 'public')).toBe('other');
  });

  it('survives the server ending a connection in the middle of a transaction', async () => {
    const cluster = await startPostgresCluster();
    onTestFinished(() => cluster.stop());
    const store = await openPostgresStore({ connectionString: cluster.url, schema: 'restart' });
    onTestFinished(() => store.close());
    await store.write((tx) => tx.createTable('things'));
    const things = store.catalog().table('things')!.number;
    // Between two statements the connection is checked out and idle: the shutdown's FATAL
    // "terminating connection" arrives as an 'error' event, which must not end the process.
    const attempt = store.write(async (tx) => {
      await tx.count('things');
      cluster.pause();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await tx.insert('things', makeDocument(things, {}));
    });
    await expect(attempt).rejects.toSatisfy((e) =>
      StorageError.is(e, StorageErrorCode.Unavailable),
    );
    cluster.resume();
    await writeWithRetries(store, (tx) => tx.insert('things', makeDocument(things, {})));
    expect(await store.read((tx) => tx.count('things'))).toBe(1);
  });

  it('survives the server ending a new connection before its first statement', async () => {
    const store = await openPostgresStore({
      connectionString: databaseUrl(),
      schema: freshSchema(),
    });
    onTestFinished(() => store.close());
    const pool = (store as unknown as { pool: pg.Pool }).pool;
    // A restart's FATAL can come in with a new connection's first answer: the pool has stopped
    // listening (the connection is checked out) and the caller has not resumed yet.
    let ended = 0;
    const endNewConnection = (client: pg.PoolClient) =>
      queueMicrotask(() => {
        ended++;
        client.emit('error', new Error('terminating connection due to administrator command'));
      });
    pool.on('acquire', endNewConnection);
    // Fill the pool, so that one more read needs a new connection.
    const reads = Array.from({ length: 12 }, () =>
      store.read(async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return tx.timestamp();
      }),
    );
    await Promise.allSettled(reads);
    pool.off('acquire', endNewConnection);
    expect(ended).toBeGreaterThan(0);
    // The process is still here, and so is the store.
    expect(typeof (await store.read((tx) => tx.timestamp()))).toBe('bigint');
  });

  it('sends one statement for the snapshot however a transaction starts', async () => {
    const store = await openPostgresStore({
      connectionString: databaseUrl(),
      schema: freshSchema(),
    });
    onTestFinished(() => store.close());
    await store.write((tx) => tx.createTable('things'));
    const things = store.catalog().table('things')!.number;
    const sent = traceStatements(store);
    const snapshots = () => sent.filter((event) => event.startsWith('send SELECT max(ts)')).length;
    // Asked for its timestamp first (as every mutation is), then writing.
    await store.write(async (tx) => {
      await tx.timestamp();
      await tx.insert('things', makeDocument(things, {}));
    });
    expect(snapshots()).toBe(1);
    // Reading first, then asked.
    await store.read(async (tx) => {
      await tx.count('things');
      return tx.timestamp();
    });
    expect(snapshots()).toBe(2);
    // The pool's own queries (a callback, no promise) go through the tracer unharmed.
    await store.processes();
    expect(
      sent.some((event) => event.startsWith('done ') && event.includes('application_name')),
    ).toBe(true);
  });

  it('sends BEGIN with the first statement, and the commit record with COMMIT, in one write each', async () => {
    const store = await openPostgresStore({
      connectionString: databaseUrl(),
      schema: freshSchema(),
    });
    onTestFinished(() => store.close());
    await store.write((tx) => tx.createTable('things'));
    const things = store.catalog().table('things')!.number;
    const writes = countSocketWrites(store);
    const sent = traceStatements(store);
    await store.write((tx) => tx.insert('things', makeDocument(things, {})));
    // BEGIN, the snapshot's query, the insert, the commit record and COMMIT: five statements,
    // which pg would write to the socket one at a time.
    expect(sent.filter((event) => event.startsWith('send '))).toHaveLength(5);
    expect(writes.count).toBe(2);
  });

  it('refuses an unsafe schema name', async () => {
    await expect(
      openPostgresStore({ connectionString: databaseUrl(), schema: 'x; drop' }),
    ).rejects.toThrow(/Invalid schema name "x; drop"/);
  });

  it('keeps a schema whose name is as long as PostgreSQL allows apart from one alike', async () => {
    // 63 bytes: whole in a session's name, it would leave no room for the process id.
    const long = `${freshSchema()}_${'x'.repeat(40)}`.slice(0, 63);
    onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), long));
    // Shares its first 7 characters and its length with `long`: must not be mistaken for it.
    const neighbour = `${long.slice(0, 62)}y`;
    onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), neighbour));
    const a = await openPostgresStore({ connectionString: databaseUrl(), schema: long });
    const b = await openPostgresStore({ connectionString: databaseUrl(), schema: long });
    const other = await openPostgresStore({ connectionString: databaseUrl(), schema: neighbour });
    try {
      const listed = await a.processes();
      expect(listed).toHaveLength(2);
      expect(listed.filter((server) => server.self)).toHaveLength(1);
      expect(listed.every((server) => server.pid === process.pid)).toBe(true);
      expect((await b.processes()).map((server) => server.id).sort()).toEqual(
        listed.map((server) => server.id).sort(),
      );
      expect(await other.processes()).toHaveLength(1);
      // Each hears its own schema's commits, never the other's (their channels are distinct).
      const heardB: bigint[] = [];
      const heardOther: bigint[] = [];
      b.onCommit((commit) => heardB.push(commit.ts));
      other.onCommit((commit) => heardOther.push(commit.ts));
      const { commit } = await a.write((tx) => tx.createTable('t'));
      expect(await b.whenDelivered(commit.ts)).toBe(true);
      expect(heardB).toContain(commit.ts);
      const own = await other.write((tx) => tx.createTable('u'));
      expect(await other.whenDelivered(own.commit.ts)).toBe(true);
      expect(heardOther).toEqual([own.commit.ts]);
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });
});
