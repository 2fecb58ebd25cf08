/**
 * Job status for clients: where each job is, and its result once it finished. Both are read
 * reactively, so a client subscribed to `jobStatus` is pushed every change (pending → running
 * → finished, and retries) as it happens.
 */
import { type RunResult, type Status, type WorkId } from '@sleigh/workpool';
import { v } from 'convex/values';
import { query } from './_generated/server';
import { emailPool } from './pools';

export interface JobView {
  id: string;
  status: Status;
  result: RunResult | null;
}

export const jobStatus = query({
  args: { ids: v.array(v.string()) },
  handler: async (ctx, { ids }): Promise<JobView[]> => {
    // Job ids are unique across pools, so any pool can look any job up.
    const statuses = await emailPool.statusBatch(ctx, ids);
    return await Promise.all(
      ids.map(async (id, i) => {
        const status = statuses[i] ?? { state: 'finished' as const };
        const result =
          status.state === 'finished' ? await emailPool.result(ctx, id as WorkId) : null;
        return { id, status, result };
      }),
    );
  },
});
