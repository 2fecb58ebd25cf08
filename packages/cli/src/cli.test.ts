/**
 * The sleigh command, as a user runs it: real processes for `dev` and `serve`, the official
 * clients against them, and export/import round trips on both drivers.
 */
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { PostgresStore } from '@sleigh/storage-postgres';
import { databaseUrl } from '@sleigh/testing';
import { ConvexHttpClient } from 'convex/browser';
import { makeFunctionReference } from 'convex/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from './main.js';
import { capture, project, sleigh } from './test-processes.js';

const send = makeFunctionReference<
  'mutation',
  { channel: string; author: string; body: string },
  string
>('messages:send');
const list = makeFunctionReference<
  'query',
  Record<string, never>,
  Array<{ _id: string; _creationTime: number; body: string }>
>('messages:list');

async function exitCode(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; output: string }> {
  const running = await sleigh(args, cwd);
  const code = await new Promise<number | null>((resolve) => {
    if (running.child.exitCode !== null) resolve(running.child.exitCode);
    else running.child.on('exit', (c) => resolve(c));
  });
  return { code, output: running.output() };
}

describe('sleigh serve and dev', () => {
  it('serves a folder, prints where and the admin key, runs functions, and stops cleanly on SIGTERM', async () => {
    const dir = project();
    const server = await sleigh(['serve', 'convex', '--port', '0'], dir);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const key = (await server.waitFor(/Admin key: (\S+)/))[1]!;
    expect(readFileSync(join(dir, '.sleigh', 'admin_key'), 'utf8').trim()).toBe(key);
    const client = new ConvexHttpClient(server.url);
    await client.mutation(send, { channel: 'cli', author: 'me', body: 'served' });
    expect((await client.query(list, {})).map((m) => m.body)).toEqual(['served']);
    // `sleigh run` reaches internal functions with the project's admin key.
    const output = capture();
    expect(
      await main(
        [
          'run',
          'messages:secretCount',
          '{"channel":"cli"}',
          '--url',
          server.url,
          '--functions',
          join(dir, 'convex'),
        ],
        output,
      ),
    ).toBe(0);
    expect(output.lines).toEqual(['1']);
    const failing = capture();
    expect(
      await main(
        [
          'run',
          'messages:send',
          '{"channel":"x"}',
          '--url',
          server.url,
          '--functions',
          join(dir, 'convex'),
        ],
        failing,
      ),
    ).toBe(1);
    expect(failing.lines.join('\n')).toMatch(/the required field "author" is missing/);
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(existsSync(join(dir, '.sleigh', 'server.pid'))).toBe(false);
  });

  it('prints the admin key it generated, never one the operator gave it', async () => {
    const dir = project();
    const secret = 'operator-given-secret-0123456789';
    for (const [args, env, source] of [
      [['--admin-key', secret], {}, '--admin-key'],
      [[], { SLEIGH_ADMIN_KEY: secret }, 'SLEIGH_ADMIN_KEY'],
    ] as const) {
      const server = await sleigh(['dev', 'convex', '--port', '0', ...args], dir, env);
      await server.waitFor(/Dashboard: /);
      expect(server.output()).not.toContain(secret);
      expect(server.output()).toContain(`Using the admin key from ${source} (not printed)`);
      expect(server.output()).not.toContain('Admin key:');
      // It is the key in use all the same.
      const output = capture();
      expect(
        await main(
          [
            'run',
            'messages:secretCount',
            '{"channel":"x"}',
            '--url',
            server.url,
            '--admin-key',
            secret,
          ],
          output,
        ),
      ).toBe(0);
      expect(await server.stop()).toBe(0);
    }
    // The key Sleigh generated is its own to show, with where it is kept.
    const generated = await sleigh(['serve', 'convex', '--port', '0'], dir);
    const file = join(dir, '.sleigh', 'admin_key');
    const key = readFileSync(file, 'utf8').trim();
    expect((await generated.waitFor(/Admin key: .*/))[0]).toBe(
      `Admin key: ${key} (kept in ${file})`,
    );
    expect(await generated.stop()).toBe(0);
  });

  it('dev regenerates _generated, reloads on change and keeps the data', async () => {
    const dir = project();
    rmSync(join(dir, 'convex', '_generated'), { recursive: true, force: true });
    const server = await sleigh(['dev', 'convex', '--port', '0'], dir);
    expect(readdirSync(join(dir, 'convex', '_generated')).sort()).toEqual([
      'api.d.ts',
      'api.js',
      'dataModel.d.ts',
      'server.d.ts',
      'server.js',
    ]);
    const client = new ConvexHttpClient(server.url);
    await client.mutation(send, { channel: 'dev', author: 'me', body: 'before reload' });
    writeFileSync(
      join(dir, 'convex', 'extra.ts'),
      "import { query } from './_generated/server';\nexport const shout = query({ args: {}, handler: async (ctx) => (await ctx.db.query('messages').collect()).map((m) => m.body.toUpperCase()) });\n",
    );
    await server.waitFor(/Reloaded \d+ functions/);
    expect(readFileSync(join(dir, 'convex', '_generated', 'api.d.ts'), 'utf8')).toContain(
      'typeof extra',
    );
    const shout = makeFunctionReference<'query', Record<string, never>, string[]>('extra:shout');
    expect(await client.query(shout, {})).toEqual(['BEFORE RELOAD']);
    // A broken edit keeps the previous code serving and says what is wrong.
    appendFileSync(join(dir, 'convex', 'extra.ts'), 'export const broken = ;\n');
    await server.waitFor(/reload failed, still serving the previous code/);
    expect(await client.query(shout, {})).toEqual(['BEFORE RELOAD']);
    expect(await server.stop('SIGINT')).toBe(0);
  });

  it('exits non-zero with a clear message on a bad folder, a schema error, or an unreachable database', async () => {
    const dir = project();
    const missing = await exitCode(['serve', 'nowhere', '--port', '0'], dir);
    expect(missing.code).not.toBe(0);
    expect(missing.output).toMatch(/Functions folder .*nowhere does not exist/);
    writeFileSync(
      join(dir, 'convex', 'schema.ts'),
      "import { defineSchema, defineTable } from 'convex/server';\nimport { v } from 'convex/values';\nexport default defineSchema({ things: defineTable({ a: v.string() }).index('by_id', ['a']) });\n",
    );
    const schema = await exitCode(['serve', 'convex', '--port', '0'], dir);
    expect(schema.code).not.toBe(0);
    expect(schema.output).toMatch(/index "by_id" on table "things": the name is reserved/);
    const db = await exitCode(
      ['serve', 'convex', '--port', '0', '--db', 'postgres://nobody@127.0.0.1:1/none'],
      dir,
    );
    expect(db.code).not.toBe(0);
    expect(db.output).toMatch(/Cannot open the database \(PostgreSQL 127\.0\.0\.1:1\/none/);
  });

  it('refuses a second server on one SQLite data directory', async () => {
    const dir = project();
    const first = await sleigh(['serve', 'convex', '--port', '0'], dir);
    expect(first.url).not.toBe('');
    const second = await exitCode(['serve', 'convex', '--port', '0'], dir);
    expect(second.code).not.toBe(0);
    expect(second.output).toMatch(/Another Sleigh process \(pid \d+\) is using/);
  });
});

describe('sleigh export and import', () => {
  it('round-trips every document, id and _creationTime, SQLite to SQLite and to PostgreSQL', async () => {
    const dir = project();
    const server = await sleigh(['serve', 'convex', '--port', '0'], dir);
    const client = new ConvexHttpClient(server.url);
    for (let i = 0; i < 1200; i++) {
      await client.mutation(send, { channel: `c${i % 7}`, author: 'a', body: `message ${i}` });
    }
    const values = makeFunctionReference<
      'mutation',
      { label: string; big: bigint; blob: ArrayBuffer },
      string
    >('values:store');
    await client.mutation(values, {
      label: 'edge',
      big: -(2n ** 63n),
      blob: new Uint8Array([0, 255]).buffer,
    });
    const original = await client.query(list, {});
    expect(await server.stop()).toBe(0);

    const exported = capture();
    const snapshot = join(dir, 'snapshot');
    expect(await main(['export', join(dir, 'convex'), '--path', snapshot], exported)).toBe(0);
    expect(exported.lines.at(-1)).toMatch(/Exported 1201 documents from 4 tables/);

    // Into a fresh SQLite data directory.
    const fresh = join(dir, 'fresh');
    const imported = capture();
    expect(await main(['import', snapshot, '--data-dir', fresh], imported)).toBe(0);
    expect(imported.lines.at(-1)).toBe(`Imported 1201 documents from ${snapshot}`);
    const again = await sleigh(['serve', 'convex', '--port', '0', '--data-dir', fresh], dir);
    const restored = await new ConvexHttpClient(again.url).query(list, {});
    expect(restored).toEqual(original);
    await again.stop();
    // A second import into a store that has data is refused.
    const refused = capture();
    expect(await main(['import', snapshot, '--data-dir', fresh], refused)).toBe(1);
    expect(refused.lines.join('\n')).toMatch(
      /Table "messages" already has documents; import needs an empty store/,
    );

    // Into PostgreSQL.
    const schema = `test_${randomBytes(6).toString('hex')}`;
    onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), schema));
    expect(
      await main(['import', snapshot, '--db', databaseUrl(), '--schema', schema], capture()),
    ).toBe(0);
    const onPostgres = await sleigh(
      ['serve', 'convex', '--port', '0', '--db', databaseUrl(), '--schema', schema],
      dir,
    );
    expect(await new ConvexHttpClient(onPostgres.url).query(list, {})).toEqual(original);
    await onPostgres.stop();
  });
});

const enqueueWork = makeFunctionReference<
  'mutation',
  { pool: string; label: string; ms: number; count?: number },
  string[]
>('pools:enqueueWork');
const attempts = makeFunctionReference<'query', { label: string }, Array<{ at: number }>>(
  'pools:events',
);
const jobResult = makeFunctionReference<
  'query',
  { pool: string; id: string },
  { kind: string; returnValue?: unknown; error?: string } | null
>('pools:result');

const jobStatus = makeFunctionReference<
  'query',
  { pool: string; ids: string[] },
  Array<{ state: string }>
>('pools:status');

describe.each(['sqlite', 'postgres'])('jobs when sleigh serve stops, on %s', (driver) => {
  const serve = (dir: string, schema: string, env: Record<string, string>) =>
    sleigh(
      [
        'serve',
        'convex',
        '--port',
        '0',
        ...(driver === 'postgres' ? ['--db', databaseUrl(), '--schema', schema] : []),
      ],
      dir,
      env,
    );
  const schemaFor = () => {
    const schema = `cli_jobs_${randomBytes(4).toString('hex')}`;
    if (driver === 'postgres')
      onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), schema));
    return schema;
  };

  it('runs an action again after its server was killed mid-run (SIGKILL)', async () => {
    const dir = project('pools');
    const schema = schemaFor();
    const env = { SLEIGH_JOB_LEASE_MS: '600' };
    const first = await serve(dir, schema, env);
    const client = new ConvexHttpClient(first.url);
    const [id] = await client.mutation(enqueueWork, {
      pool: 'retrying',
      label: 'killed',
      ms: 3000,
    });
    await expect
      .poll(async () => (await client.query(attempts, { label: 'killed' })).length, {
        timeout: 10_000,
      })
      .toBe(1);
    expect(await first.stop('SIGKILL')).toBe(null);

    const second = await serve(dir, schema, env);
    const again = new ConvexHttpClient(second.url);
    await expect
      .poll(() => again.query(jobResult, { pool: 'retrying', id: id! }), { timeout: 20_000 })
      .toEqual({ kind: 'success', returnValue: 'killed done' });
    // The lost attempt counted; the job ran again and finished, never stuck running.
    expect(await again.query(attempts, { label: 'killed' })).toHaveLength(2);
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('does not charge a job claimed ahead, never started, for its server being killed', async () => {
    const dir = project('pools');
    const schema = schemaFor();
    const env = { SLEIGH_JOB_LEASE_MS: '600' };
    const first = await serve(dir, schema, env);
    const client = new ConvexHttpClient(first.url);
    // Three fill the pool of three (no retries); the fourth is claimed ahead and waits.
    const busy = await client.mutation(enqueueWork, {
      pool: 'narrow',
      label: 'busy',
      ms: 5000,
      count: 3,
    });
    const [queued] = await client.mutation(enqueueWork, {
      pool: 'narrow',
      label: 'queued',
      ms: 10,
    });
    // Killed once the database knows the three started (their starts are written in batches).
    await expect
      .poll(
        async () =>
          (await client.query(jobStatus, { pool: 'narrow', ids: busy })).map((s) => s.state),
        { timeout: 10_000 },
      )
      .toEqual(['running', 'running', 'running']);
    expect(await first.stop('SIGKILL')).toBe(null);

    const second = await serve(dir, schema, env);
    const again = new ConvexHttpClient(second.url);
    // The started ones lost their only attempt; the waiting one runs, with nothing charged.
    await expect
      .poll(() => again.query(jobResult, { pool: 'narrow', id: queued! }), { timeout: 20_000 })
      .toEqual({ kind: 'success', returnValue: 'queued done' });
    for (const id of busy) {
      expect((await again.query(jobResult, { pool: 'narrow', id }))?.error).toMatch(
        /lease ran out/,
      );
    }
    expect(await again.query(attempts, { label: 'queued' })).toHaveLength(1);
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('lets running jobs finish on SIGTERM, and hands back those past the grace period', async () => {
    const dir = project('pools');
    const schema = schemaFor();
    const first = await serve(dir, schema, { SLEIGH_SHUTDOWN_GRACE_MS: '1500' });
    const client = new ConvexHttpClient(first.url);
    const [quick] = await client.mutation(enqueueWork, { pool: 'narrow', label: 'quick', ms: 500 });
    const [slow] = await client.mutation(enqueueWork, { pool: 'narrow', label: 'slow', ms: 4000 });
    await expect
      .poll(
        async () =>
          (await client.query(attempts, { label: 'quick' })).length +
          (await client.query(attempts, { label: 'slow' })).length,
        { timeout: 10_000 },
      )
      .toBe(2);
    expect(await first.stop('SIGTERM')).toBe(0);

    const second = await serve(dir, schema, {});
    const again = new ConvexHttpClient(second.url);
    // The quick one finished within the grace period: done, one attempt.
    expect(await again.query(jobResult, { pool: 'narrow', id: quick! })).toEqual({
      kind: 'success',
      returnValue: 'quick done',
    });
    expect(await again.query(attempts, { label: 'quick' })).toHaveLength(1);
    // The slow one was handed back (no retries in this pool, yet not failed) and runs again.
    await expect
      .poll(() => again.query(jobResult, { pool: 'narrow', id: slow! }), { timeout: 20_000 })
      .toEqual({ kind: 'success', returnValue: 'slow done' });
    expect(await again.query(attempts, { label: 'slow' })).toHaveLength(2);
    expect(await second.stop('SIGTERM')).toBe(0);
  });
});

describe('sleigh jobs', () => {
  const setSwitch = makeFunctionReference<'mutation', { name: string; on: boolean }, null>(
    'graph:setSwitch',
  );
  const failingChain = makeFunctionReference<
    'mutation',
    { switch: string },
    Record<string, string>
  >('graph:failingChain');
  const results = makeFunctionReference<
    'query',
    { pool: 'graph'; ids: string[] },
    Array<{ kind: string; returnValue?: string } | null>
  >('graph:results');

  /** `sleigh serve` on the pools app, a client, and `sleigh jobs …` against it. */
  async function servePools() {
    const dir = project('pools');
    const server = await sleigh(['serve', 'convex', '--port', '0'], dir);
    const key = (await server.waitFor(/Admin key: (\S+)/))[1]!;
    const client = new ConvexHttpClient(server.url);
    const jobs = (...args: string[]) => {
      const output = capture();
      return main(['jobs', ...args, '--url', server.url, '--admin-key', key], output).then(
        (code) => ({ code, lines: output.lines }),
      );
    };
    return { server, key, client, jobs };
  }

  it('lists a pool’s dead letters and retries them, with the admin key only', async () => {
    const { server, client, jobs } = await servePools();
    await client.mutation(setSwitch, { name: 'cli', on: true });
    const ids = await client.mutation(failingChain, { switch: 'cli' });
    await expect
      .poll(async () => (await jobs('failed', 'graph')).lines.at(-1), { timeout: 10_000 })
      .toBe('3 failed jobs in pool "graph"');
    const listed = await jobs('failed', 'graph');
    expect(listed.code).toBe(0);
    expect(
      listed.lines.some(
        (line) => line.startsWith(ids.bad!) && line.includes('failed while cli was on'),
      ),
    ).toBe(true);
    // Without the admin key the server refuses, and says why.
    const refused = capture();
    expect(
      await main(['jobs', 'failed', 'graph', '--url', server.url, '--admin-key', 'wrong'], refused),
    ).toBe(1);
    expect(refused.lines.join('\n')).toMatch(/HTTP 401.*admin key is not valid/);
    await client.mutation(setSwitch, { name: 'cli', on: false });
    const retried = await jobs('retry', 'graph');
    expect(retried).toEqual({
      code: 0,
      lines: ['Retried 3 jobs in pool "graph" (with what depends on them)'],
    });
    await expect
      .poll(
        async () => (await client.query(results, { pool: 'graph', ids: [ids.grandchild!] }))[0],
        {
          timeout: 10_000,
        },
      )
      .toEqual({ kind: 'success', returnValue: 'grandchild(child(bad()))' });
    expect((await jobs('failed', 'graph')).lines).toEqual(['No failed jobs in pool "graph"']);
    expect((await jobs('explode', 'graph')).code).toBe(2);
  });

  it('pauses and resumes a pool: nothing of it starts in between', async () => {
    const { client, jobs } = await servePools();
    // A pool that never had a job is refused by name, not paused.
    const unknown = await jobs('pause', 'narrow');
    expect(unknown.code).toBe(1);
    expect(unknown.lines.join('\n')).toMatch(/HTTP 404.*No workpool named "narrow"/);
    const [first] = await client.mutation(enqueueWork, { pool: 'narrow', label: 'first', ms: 1 });
    await expect
      .poll(async () => (await client.query(jobResult, { pool: 'narrow', id: first! }))?.kind)
      .toBe('success');
    expect(await jobs('pause', 'narrow')).toEqual({
      code: 0,
      lines: [
        'Paused pool "narrow": none of its jobs start until `sleigh jobs resume narrow` (running ones finish)',
      ],
    });
    expect((await jobs('pause', 'narrow')).lines).toEqual(['Pool "narrow" was already paused']);
    const held = await client.mutation(enqueueWork, {
      pool: 'narrow',
      label: 'held',
      ms: 1,
      count: 3,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await client.query(attempts, { label: 'held' })).toEqual([]);
    expect((await jobs('resume', 'narrow')).lines).toEqual([
      'Resumed pool "narrow": its jobs start again',
    ]);
    await expect
      .poll(async () => (await client.query(attempts, { label: 'held' })).length)
      .toBe(held.length);
    expect((await jobs('resume', 'narrow')).lines).toEqual(['Pool "narrow" was not paused']);
    expect((await jobs('pause', 'narrow', '--limit', '3')).code).toBe(2);
  });

  it('prints job errors with their control characters escaped, so they cannot act on the terminal', async () => {
    const dir = project('pools');
    const server = await sleigh(['serve', 'convex', '--port', '0'], dir);
    const key = (await server.waitFor(/Admin key: (\S+)/))[1]!;
    const client = new ConvexHttpClient(server.url);
    // Set the window title, clear the screen, turn red, and forge a line of its own.
    const label = '\u001b]0;pwned\u0007\u001b[2J\u001b[31mFAKE LINE\nforged  line\u009b31m';
    const [id] = await client.mutation(enqueueWork, {
      pool: 'narrow',
      label,
      ms: 1,
      nonRetryable: true,
    } as { pool: string; label: string; ms: number });
    const failed = async () => {
      const output = capture();
      await main(['jobs', 'failed', 'narrow', '--url', server.url, '--admin-key', key], output);
      return output.lines;
    };
    await expect.poll(failed, { timeout: 10_000 }).toHaveLength(2);
    const [line, total] = await failed();
    expect(total).toBe('1 failed job in pool "narrow"');
    expect(line).toMatch(new RegExp(`^${id}  `));
    expect(line).toContain(
      '\\u001b]0;pwned\\u0007\\u001b[2J\\u001b[31mFAKE LINE\\nforged  line\\u009b31m: this cannot work',
    );
    // eslint-disable-next-line no-control-regex -- what must not be printed
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('says when it lists only the oldest, retries every dead letter page by page, names those it cannot, and knows its pools', async () => {
    const { server, key, client, jobs } = await servePools();
    // 1,050 dead letters (350 chains of three): more than a page of the server's retry.
    await client.mutation(setSwitch, { name: 'many', on: true });
    for (let i = 0; i < 35; i++) {
      await Promise.all(
        Array.from({ length: 10 }, () => client.mutation(failingChain, { switch: 'many' })),
      );
    }
    // And one whose dependency was canceled: retrying it alone cannot work.
    const [slow] = await client.mutation(
      makeFunctionReference<'mutation', { labels: string[]; ms: number }, string[]>(
        'graph:enqueueSteps',
      ),
      { labels: ['slow'], ms: 3000 },
    );
    const orphan = await client.mutation(
      makeFunctionReference<'mutation', { id: string; label: string }, string>('graph:dependOn'),
      { id: slow!, label: 'orphan' },
    );
    const admin = new ConvexHttpClient(server.url);
    (admin as unknown as { setAdminAuth(key: string): void }).setAdminAuth(key);
    await admin.mutation(
      makeFunctionReference<'mutation', { ids: string[] }, number>('_system/pools:cancel'),
      { ids: [slow!] },
    );
    await expect
      .poll(async () => (await jobs('failed', 'graph', '--limit', '5000')).lines.at(-1), {
        timeout: 60_000,
      })
      .toBe('1051 failed jobs in pool "graph"');
    // By default the oldest 100, saying that there are more.
    const listed = await jobs('failed', 'graph');
    expect(listed.lines).toHaveLength(101);
    expect(listed.lines.at(-1)).toBe(
      'The oldest 100 failed jobs in pool "graph"; there are more (--limit <n> lists up to n)',
    );
    // A mistyped pool is not a pool without dead letters.
    const typo = await jobs('failed', 'grahp');
    expect(typo.code).toBe(1);
    expect(typo.lines.join('\n')).toMatch(
      /HTTP 404\): No workpool named "grahp" has had a job on this server \(its pools: .*"graph"/,
    );
    await client.mutation(setSwitch, { name: 'many', on: false });
    const retried = await jobs('retry', 'graph');
    expect(retried.lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^Skipped ${orphan}  graph:step: it depends on .*\\(${slow}\\), which was canceled`,
        ),
      ),
      'Retried 1050 jobs in pool "graph" (with what depends on them); 1 dead letter could not be retried (listed above)',
    ]);
    expect(retried.code).toBe(1);
    await expect
      .poll(async () => (await jobs('failed', 'graph')).lines.at(-1), { timeout: 60_000 })
      .toBe('1 failed job in pool "graph"');
  });
});
