/**
 * A reindeer or an elf, alone in its process:
 *
 *   register (ready) ─▶ wait until Santa takes it (no longer ready) ─▶ wait until "vacationing"
 *        ▲                                                                   │
 *        └──────── back from vacation (ready) ◀── sleep a random vacation ◀──┘
 *
 * A subscription delivers the latest state, not every state: at full speed Santa may put a
 * worker to work and send it on vacation between two updates, so the worker waits for "not
 * ready" rather than for "working".
 */
import { api } from '../../convex/_generated/api.js';
import { connect, flags, followPaces, randomSleep, waitUntil } from './common.js';

const options = flags(process.argv.slice(2));
const url = options.get('url')!;
const kind = options.get('kind') as 'reindeer' | 'elf';
const name = options.get('name')!;
const client = connect(url);
const paces = followPaces(client, options.get('zero-delay') === 'true');

let stopping = false;
const stop = () => {
  stopping = true;
  void client.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
// Started by the workshop: leave with it.
process.on('disconnect', stop);

const id = await client.mutation(api.workers.register, { kind, name });
process.send?.({ ready: true });
while (!stopping) {
  await waitUntil(client, api.workers.state, { id }, (state) => state !== 'ready');
  await waitUntil(client, api.workers.state, { id }, (state) => state === 'vacationing');
  await randomSleep(paces.vacationMs);
  if (stopping) break;
  await client.mutation(api.workers.backFromVacation, { id });
}
