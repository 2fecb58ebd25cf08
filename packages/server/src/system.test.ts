/**
 * Sleigh's own `_system/` functions (the dashboard's data), over the sync protocol with the
 * official ConvexClient: live for the admin, invisible without the admin key.
 */
import { makeFunctionReference, type PaginationResult } from 'convex/server';
import { describe, expect, it } from 'vitest';
import { asAdmin, connect, DRIVERS, startServer } from './test-server.js';

type Table = { name: string; documents: number };
type Pool = { name: string; maxParallelism: number; counts: Record<string, number> };
type Fn = { path: string; kind: string; visibility: string; args: { type: string } };

const system = {
  tables: makeFunctionReference<'query', Record<string, never>, Table[]>('_system/data:tables'),
  documents: makeFunctionReference<
    'query',
    { table: string; paginationOpts: { numItems: number; cursor: string | null } },
    PaginationResult<{ _id: string; body?: string }>
  >('_system/data:documents'),
  pools: makeFunctionReference<'query', Record<string, never>, Pool[]>('_system/pools:pools'),
  functions: makeFunctionReference<'query', Record<string, never>, Fn[]>('_system/functions:list'),
  jobs: makeFunctionReference<
    'query',
    { pool: string; state: string; paginationOpts: { numItems: number; cursor: string | null } },
    PaginationResult<{ id: string; name: string; state: string; outcome: string | null }>
  >('_system/pools:jobs'),
  cancelJobs: makeFunctionReference<'mutation', { ids: string[] }, number>('_system/pools:cancel'),
  scheduled: makeFunctionReference<
    'query',
    { state: string; paginationOpts: { numItems: number; cursor: string | null } },
    PaginationResult<{ _id: string; name: string; state: { kind: string } }>
  >('_system/schedules:list'),
  cancelScheduled: makeFunctionReference<'mutation', { id: string }, null>(
    '_system/schedules:cancel',
  ),
  crons: makeFunctionReference<
    'query',
    Record<string, never>,
    Array<{ name: string; function: string; lastRun: number | null; nextRun: number }>
  >('_system/schedules:crons'),
};
const scheduleWork = makeFunctionReference<
  'mutation',
  { label: string; ms: number; delayMs?: number },
  string
>('scheduling:scheduleWork');
const send = makeFunctionReference<
  'mutation',
  { channel: string; author: string; body: string },
  string
>('messages:send');
const enqueueWork = makeFunctionReference<
  'mutation',
  { pool: string; label: string; ms: number; count?: number },
  string[]
>('pools:enqueueWork');

describe.each(DRIVERS)('system functions on $name', (driver) => {
  it('gives the admin live table counts, pages of documents and the functions; nobody else', async () => {
    const server = await startServer(driver);
    const client = asAdmin(connect(server));
    const counts: Table[][] = [];
    client.onUpdate(system.tables, {}, (tables) => counts.push(tables));
    await expect.poll(() => counts.length).toBeGreaterThan(0);
    const messagesCount = () => counts.at(-1)?.find((t) => t.name === 'messages')?.documents;
    expect(messagesCount()).toBe(0);
    expect(counts.at(-1)!.every((table) => !table.name.startsWith('_'))).toBe(true);
    for (const body of ['one', 'two', 'three']) {
      await client.mutation(send, { channel: 'c', author: 'a', body });
    }
    await expect.poll(messagesCount).toBe(3);

    const page = await client.query(system.documents, {
      table: 'messages',
      paginationOpts: { numItems: 2, cursor: null },
    });
    expect(page.page.map((doc) => doc.body)).toEqual(['three', 'two']);
    expect(page.isDone).toBe(false);

    const functions = await client.query(system.functions, {});
    const sendInfo = functions.find((fn) => fn.path === 'messages:send');
    expect(sendInfo).toMatchObject({ kind: 'mutation', visibility: 'public' });
    expect(sendInfo?.args.type).toBe('object');
    expect(functions.some((fn) => fn.path.startsWith('_system/'))).toBe(false);

    // Without the admin key they do not exist, as any internal function.
    const outsider = connect(server);
    await expect(outsider.query(system.tables, {})).rejects.toThrow(
      /Could not find public query "_system\/data:tables"/,
    );
  });

  it("shows each pool's jobs by state", async () => {
    const server = await startServer(driver, { app: 'pools', jobs: false });
    const client = asAdmin(connect(server));
    await client.mutation(enqueueWork, { pool: 'narrow', label: 'counted', ms: 1, count: 4 });
    const pools = await client.query(system.pools, {});
    expect(pools.find((pool) => pool.name === 'narrow')).toEqual({
      name: 'narrow',
      maxParallelism: 3,
      paused: false,
      counts: {
        waiting: 0,
        delayed: 0,
        pending: 4,
        running: 0,
        completing: 0,
        finished: 0,
        failed: 0,
      },
      inUse: 0,
    });
  });

  it("lists a pool's jobs by state and cancels them", async () => {
    const server = await startServer(driver, { app: 'pools', jobs: false });
    const client = asAdmin(connect(server));
    const ids = await client.mutation(enqueueWork, {
      pool: 'narrow',
      label: 'listed',
      ms: 1,
      count: 3,
    });
    const pending = await client.query(system.jobs, {
      pool: 'narrow',
      state: 'pending',
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(pending.page.map((job) => job.id).sort()).toEqual([...ids].sort());
    expect(pending.page.every((job) => job.outcome === null)).toBe(true);
    expect(await client.mutation(system.cancelJobs, { ids: [ids[0]!] })).toBe(1);
    const finished = await client.query(system.jobs, {
      pool: 'narrow',
      state: 'finished',
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(finished.page).toMatchObject([{ id: ids[0], outcome: 'canceled' }]);
  });

  it('lists scheduled functions by state, cancels one, and shows the crons', async () => {
    const server = await startServer(driver, { app: 'jobs', jobs: false });
    const client = asAdmin(connect(server));
    const id = await client.mutation(scheduleWork, { label: 'later', ms: 1, delayMs: 60_000 });
    const listed = await client.query(system.scheduled, {
      state: 'pending',
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(listed.page.map((job) => job._id)).toEqual([id]);
    await client.mutation(system.cancelScheduled, { id });
    const canceled = await client.query(system.scheduled, {
      state: 'canceled',
      paginationOpts: { numItems: 10, cursor: null },
    });
    expect(canceled.page.map((job) => job._id)).toEqual([id]);

    const fleet = await startServer(driver, { app: 'fleet', jobs: false });
    const crons = await asAdmin(connect(fleet)).query(system.crons, {});
    expect(crons).toMatchObject([{ name: 'tick', function: 'fleet:tick' }]);
    expect(crons[0]!.nextRun).toBeGreaterThan(0);
  });
});
