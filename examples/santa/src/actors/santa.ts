/**
 * Santa, alone in his process:
 *
 *   wait until a group is ready ─▶ dispatch it (atomically) ─▶ work a random time ─▶ release it
 *        ▲                                                                              │
 *        └──────────────────────────────────────────────────────────────────────────────┘
 *
 * He stops after `--cycles` groups, or on SIGTERM, always after releasing the group at work.
 */
import { api } from '../../convex/_generated/api.js';
import { connect, flags, followPaces, randomSleep, waitUntil } from './common.js';

const options = flags(process.argv.slice(2));
const client = connect(options.get('url')!);
const paces = followPaces(client, options.get('zero-delay') === 'true');
const limit = Number(options.get('cycles') ?? Infinity);

let stopping = false;
process.on('SIGTERM', () => (stopping = true));
// The workshop went away: nothing is left to coordinate with.
process.on('disconnect', () => process.exit(0));

let cycles = 0;
process.send?.({ ready: true });
while (!stopping && cycles < limit) {
  await waitUntil(client, api.santa.groupReady, {}, (group) => group !== null);
  const group = await client.mutation(api.santa.dispatch, {});
  if (group === null) continue;
  await randomSleep(paces.workMs);
  await client.mutation(api.santa.release, {});
  cycles++;
  if (cycles % 100 === 0) process.send?.({ cycles });
}
process.send?.({ done: cycles });
await client.close();
process.exit(0);
