/**
 * The client side of the server benchmarks, run in a worker thread so that clients and server
 * use different cores: official ConvexClients over `ws`, measuring what a user would feel.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ConvexClient } from 'convex/browser';
import { makeFunctionReference } from 'convex/server';
import { WebSocket } from 'ws';

const get = makeFunctionReference<'query', Record<string, never>, number>('fanout:get');
const set = makeFunctionReference<'mutation', { value: number }, null>('fanout:set');

const {
  url,
  clients: clientCount,
  rounds,
  mutations,
} = workerData as {
  url: string;
  clients: number;
  rounds: number;
  mutations: number;
};

function client(): ConvexClient {
  return new ConvexClient(url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
}

async function roundTrips(): Promise<number[]> {
  const writer = client();
  const latencies: number[] = [];
  await writer.mutation(set, { value: -1 });
  for (let i = 0; i < mutations; i++) {
    const start = performance.now();
    await writer.mutation(set, { value: -2 - i });
    latencies.push(performance.now() - start);
  }
  await writer.close();
  return latencies;
}

async function fanOut(): Promise<{ perClient: number[]; allClients: number[] }> {
  const clients = Array.from({ length: clientCount }, client);
  const seen = new Array<number>(clientCount).fill(Number.NaN);
  let expected = Number.NaN;
  let sentAt = 0;
  let arrivals: number[] = [];
  let remaining = 0;
  let roundDone: (() => void) | null = null;
  clients.forEach((c, i) =>
    c.onUpdate(get, {}, (value) => {
      seen[i] = value;
      if (value === expected) {
        arrivals.push(performance.now() - sentAt);
        if (--remaining === 0) roundDone?.();
      }
    }),
  );
  const deadline = Date.now() + 60_000;
  while (seen.some((value) => Number.isNaN(value))) {
    if (Date.now() > deadline) throw new Error('clients did not all subscribe');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const writer = client();
  const perClient: number[] = [];
  const allClients: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    arrivals = [];
    remaining = clientCount;
    expected = round;
    const done = new Promise<void>((resolve) => (roundDone = resolve));
    sentAt = performance.now();
    await writer.mutation(set, { value: round });
    await done;
    perClient.push(...arrivals);
    allClients.push(Math.max(...arrivals));
  }
  await writer.close();
  await Promise.all(clients.map((c) => c.close()));
  return { perClient, allClients };
}

const latencies = await roundTrips();
const fan = await fanOut();
parentPort!.postMessage({ latencies, ...fan });
