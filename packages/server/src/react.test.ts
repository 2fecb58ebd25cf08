/// <reference lib="dom" />
/**
 * The React client: ConvexReactClient with useQuery and useMutation, rendered into a jsdom
 * document, updating live from the server. The test runs in Node (the server bundles with
 * esbuild, which needs Node's own typed arrays), with jsdom's window installed as the globals
 * React DOM renders into.
 */
import { makeFunctionReference } from 'convex/server';
import {
  ConvexProvider,
  ConvexReactClient,
  useMutation,
  usePaginatedQuery,
  useQuery,
} from 'convex/react';
import { act, createElement, type ReactElement } from 'react';
import { createRoot } from 'react-dom/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JSDOM } from 'jsdom';
import { WebSocket } from 'ws';
import type { SleighServer } from './server.js';
import { connect, DRIVERS, startServer, waitFor } from './test-server.js';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
Object.assign(globalThis, {
  window: dom.window,
  document: dom.window.document,
  IS_REACT_ACT_ENVIRONMENT: true,
});

const counter = makeFunctionReference<'query', { name: string }, number>('bank:counter');
const increment = makeFunctionReference<'mutation', { name: string }, number>('bank:increment');
type Message = { _id: string; body: string };
const page = makeFunctionReference<
  'query',
  { channel: string; paginationOpts: { numItems: number; cursor: string | null } },
  { page: Message[]; isDone: boolean; continueCursor: string }
>('messages:page');
const send = makeFunctionReference<
  'mutation',
  { channel: string; author: string; body: string },
  string
>('messages:send');

/**
 * Renders `component` under a ConvexProvider whose ConvexReactClient talks to `server`; returns
 * the text of the element with `id`. The page is unmounted and the client closed afterwards.
 */
async function mount(
  server: SleighServer,
  component: () => ReactElement,
  id: string,
): Promise<() => string | null | undefined> {
  const client = new ConvexReactClient(server.url, {
    webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
    unsavedChangesWarning: false,
  });
  const container = document.createElement('div');
  document.body.append(container);
  const root = createRoot(container);
  onTestFinished(async () => {
    await act(async () => root.unmount());
    await client.close();
  });
  await act(async () => {
    root.render(createElement(ConvexProvider, { client }, createElement(component)));
  });
  return () => container.querySelector(`#${id}`)?.textContent;
}

describe.each(DRIVERS)('React client on $name', (driver) => {
  it('renders useQuery results and re-renders when another client mutates', async () => {
    const server = await startServer(driver);
    let bump: (() => Promise<unknown>) | null = null;
    function Counter(): ReactElement {
      const value = useQuery(counter, { name: 'react' });
      const mutate = useMutation(increment);
      bump = () => mutate({ name: 'react' });
      return createElement(
        'p',
        { id: 'count' },
        value === undefined ? 'loading' : `count ${value}`,
      );
    }
    const text = await mount(server, Counter, 'count');
    await waitFor(() => text() === 'count 0');
    // A mutation from this page, then one from an unrelated client: both show up.
    await act(async () => {
      await bump!();
    });
    await waitFor(() => text() === 'count 1');
    const other = connect(server);
    await other.mutation(increment, { name: 'react' });
    await waitFor(() => text() === 'count 2');
    expect(text()).toBe('count 2');
  });

  it('keeps a usePaginatedQuery list whole while documents land in its loaded pages', async () => {
    const server = await startServer(driver);
    const writer = connect(server);
    for (let i = 1; i <= 4; i++) {
      await writer.mutation(send, { channel: 'feed', author: 'a', body: `m${i}` });
    }
    let more: ((n: number) => void) | null = null;
    function Feed(): ReactElement {
      const { results, loadMore } = usePaginatedQuery(
        page,
        { channel: 'feed' },
        { initialNumItems: 2 },
      );
      more = loadMore;
      return createElement('p', { id: 'feed' }, results.map((m) => m.body).join(','));
    }
    const text = await mount(server, Feed, 'feed');
    await waitFor(() => text() === 'm4,m3');
    await act(async () => more!(2));
    await waitFor(() => text() === 'm4,m3,m2,m1');
    // Newest first, so each lands in the first page: it grows (and the client splits it once
    // it is over twice its size), and no message ever drops out of the list.
    const expected = ['m4', 'm3', 'm2', 'm1'];
    for (let i = 5; i <= 10; i++) {
      await writer.mutation(send, { channel: 'feed', author: 'a', body: `m${i}` });
      expected.unshift(`m${i}`);
      await waitFor(() => text() === expected.join(','));
    }
  });
});
