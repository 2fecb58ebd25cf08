/**
 * Job state over the sync protocol: the official ConvexClient subscribes to the
 * `_scheduled_functions` table and to a pool job's status, and is pushed each change as the
 * server's runners move the jobs along.
 */
import { makeFunctionReference } from 'convex/server';
import { describe, expect, it } from 'vitest';
import { connect, DRIVERS, startServer } from './test-server.js';

type Scheduled = { _id: string; name: string; state: { kind: string } };
type Status = { state: string; previousAttempts?: number };

const api = {
  scheduleWork: makeFunctionReference<
    'mutation',
    { label: string; ms: number; delayMs?: number },
    string
  >('scheduling:scheduleWork'),
  scheduled: makeFunctionReference<'query', Record<string, never>, Scheduled[]>(
    'scheduling:scheduled',
  ),
  enqueueWork: makeFunctionReference<
    'mutation',
    { pool: string; label: string; ms: number; retry?: boolean },
    string[]
  >('pools:enqueueWork'),
  status: makeFunctionReference<'query', { pool: string; ids: string[] }, Status[]>('pools:status'),
  result: makeFunctionReference<
    'query',
    { pool: string; id: string },
    { kind: string; returnValue?: unknown } | null
  >('pools:result'),
};

describe.each(DRIVERS)('job state pushed to clients on $name', (driver) => {
  it('pushes every state of a scheduled action to a subscription of _scheduled_functions', async () => {
    const server = await startServer(driver, { app: 'jobs' });
    const client = connect(server);
    const seen: string[] = [];
    const unsubscribe = client.onUpdate(api.scheduled, {}, (jobs) => {
      const kind = jobs[0]?.state.kind;
      if (kind !== undefined && seen.at(-1) !== kind) seen.push(kind);
    });
    await client.mutation(api.scheduleWork, { label: 'watched', ms: 300, delayMs: 200 });
    await expect.poll(() => seen.at(-1), { timeout: 10_000 }).toBe('success');
    unsubscribe();
    expect(seen).toEqual(['pending', 'inProgress', 'success']);
  });

  it("pushes a pool job's status and result as it runs", async () => {
    const server = await startServer(driver, { app: 'pools' });
    const client = connect(server);
    const [id] = await client.mutation(api.enqueueWork, {
      pool: 'narrow',
      label: 'pushed',
      ms: 300,
    });
    const states: string[] = [];
    const unsubscribe = client.onUpdate(api.status, { pool: 'narrow', ids: [id!] }, ([status]) => {
      if (status !== undefined && states.at(-1) !== status.state) states.push(status.state);
    });
    await expect.poll(() => states.at(-1), { timeout: 10_000 }).toBe('finished');
    unsubscribe();
    expect(states.slice(-2)).toEqual(['running', 'finished']);
    expect(await client.query(api.result, { pool: 'narrow', id: id! })).toEqual({
      kind: 'success',
      returnValue: 'pushed done',
    });
  });
});
