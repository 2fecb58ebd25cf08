/// <reference lib="dom" />
/**
 * The React client: ConvexReactClient with useQuery and useMutation, rendered into a jsdom
 * document, updating live from the server. The test runs in Node (the server bundles with
 * esbuild, which needs Node's own typed arrays), with jsdom's window installed as the globals
 * React DOM renders into.
 */
import { makeFunctionReference } from 'convex/server';
import { ConvexProvider, ConvexReactClient, useMutation, useQuery } from 'convex/react';
import { act, createElement, type ReactElement } from 'react';
import { createRoot } from 'react-dom/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JSDOM } from 'jsdom';
import { WebSocket } from 'ws';
import { connect, DRIVERS, startServer, waitFor } from './test-server.js';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
Object.assign(globalThis, {
  window: dom.window,
  document: dom.window.document,
  IS_REACT_ACT_ENVIRONMENT: true,
});

const counter = makeFunctionReference<'query', { name: string }, number>('bank:counter');
const increment = makeFunctionReference<'mutation', { name: string }, number>('bank:increment');

describe.each(DRIVERS)('React client on $name', (driver) => {
  it('renders useQuery results and re-renders when another client mutates', async () => {
    const server = await startServer(driver);
    const client = new ConvexReactClient(server.url, {
      webSocketConstructor: WebSocket as unknown as typeof globalThis.WebSocket,
      unsavedChangesWarning: false,
    });
    onTestFinished(() => client.close());
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
    const container = document.createElement('div');
    document.body.append(container);
    const root = createRoot(container);
    await act(async () => {
      root.render(createElement(ConvexProvider, { client }, createElement(Counter)));
    });
    const text = () => container.querySelector('#count')?.textContent;
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
    await act(async () => root.unmount());
  });
});
