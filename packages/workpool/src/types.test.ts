/**
 * Enqueue calls are checked at compile time against the target function's argument validator,
 * through the references `_generated/api` gives (`makeFunctionReference` types them the same
 * way here). Each `@ts-expect-error` below must stay an error: if a wrong argument ever
 * compiled, `npm run typecheck` (part of `npm test`) would fail on the unused directive.
 */
import { makeFunctionReference } from 'convex/server';
import { describe, expectTypeOf, it } from 'vitest';
import { Workpool, type WorkId } from './index.js';

const send = makeFunctionReference<'action', { to: string; attempts: number }, boolean>(
  'emails:send',
);
const record = makeFunctionReference<'mutation', { id: string }, null>('emails:record');
const pool = new Workpool('typed');

/** Never called: it exists to be typechecked. */
async function enqueueCalls(ctx: { runQuery: () => Promise<unknown> }): Promise<void> {
  await pool.enqueueAction(ctx, send, { to: 'a@b.c', attempts: 1 });
  await pool.enqueueAction(send, { to: 'a@b.c', attempts: 1 }, { priority: 5, group: 't1' });
  // @ts-expect-error a missing argument
  await pool.enqueueAction(ctx, send, { to: 'a@b.c' });
  // @ts-expect-error an argument of the wrong type
  await pool.enqueueAction(ctx, send, { to: 'a@b.c', attempts: '1' });
  // @ts-expect-error an argument the function does not take
  await pool.enqueueAction(ctx, send, { to: 'a@b.c', attempts: 1, cc: 'x' });
  // @ts-expect-error a mutation is not an action
  await pool.enqueueAction(ctx, record, { id: 'x' });
  // @ts-expect-error the batch form checks each arguments object
  await pool.enqueueMutationBatch(ctx, record, [{ id: 'x' }, { id: 1 }]);
  // @ts-expect-error dependsOn takes job ids, not strings
  await pool.enqueueMutation(ctx, record, { id: 'x' }, { dependsOn: ['not-an-id'] });
}

describe('enqueue types', () => {
  it('gives job ids, graph ids and results their types', () => {
    type Enqueued = Awaited<ReturnType<typeof pool.enqueueAction<typeof send>>>;
    expectTypeOf<Enqueued>().toEqualTypeOf<WorkId>();
    type Graph = Awaited<ReturnType<typeof pool.enqueueGraph<'fetch' | 'parse'>>>;
    expectTypeOf<Graph>().toEqualTypeOf<Record<'fetch' | 'parse', WorkId>>();
    expectTypeOf(enqueueCalls).returns.resolves.toBeVoid();
  });
});
