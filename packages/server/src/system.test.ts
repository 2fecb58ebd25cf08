/**
 * Sleigh's own `_system/` functions (the dashboard's data), over the sync protocol with the
 * official ConvexClient: live for the admin, invisible without the admin key.
 */
import { makeFunctionReference, type PaginationResult } from 'convex/server';
import { describe, expect, it } from 'vitest';
import { ADMIN_KEY, connect, DRIVERS, startServer } from './test-server.js';

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
};
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

function admin(client: ReturnType<typeof connect>): ReturnType<typeof connect> {
  (client as unknown as { setAdminAuth(key: string): void }).setAdminAuth(ADMIN_KEY);
  return client;
}

describe.each(DRIVERS)('system functions on $name', (driver) => {
  it('gives the admin live table counts, pages of documents and the functions; nobody else', async () => {
    const server = await startServer(driver);
    const client = admin(connect(server));
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
    const client = admin(connect(server));
    await client.mutation(enqueueWork, { pool: 'narrow', label: 'counted', ms: 1, count: 4 });
    const pools = await client.query(system.pools, {});
    expect(pools.find((pool) => pool.name === 'narrow')).toEqual({
      name: 'narrow',
      maxParallelism: 3,
      counts: {
        waiting: 0,
        delayed: 0,
        pending: 4,
        running: 0,
        completing: 0,
        finished: 0,
        failed: 0,
      },
    });
  });
});
