import { ConvexProvider, useConvexConnectionState, type ConvexReactClient } from 'convex/react';
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { Navigate, NavLink, Route, Routes, useLocation } from 'react-router';
import { checkKey, createClient, KeyRefused, storedKey } from './client';
import { ErrorBoundary } from './components/ErrorBoundary';
import { SignIn } from './pages/SignIn';
import { DataPage } from './pages/Data';
import { DocumentPage } from './pages/Document';
import { FunctionsPage } from './pages/Functions';
import { LogsPage } from './pages/Logs';
import { SchedulesPage } from './pages/Schedules';
import { PoolsPage } from './pages/Pools';
import { PoolPage } from './pages/Pool';
import { JobPage } from './pages/Job';
import { GraphPage } from './pages/Graph';
import { HealthPage } from './pages/Health';

type Session =
  | { phase: 'checking' }
  | { phase: 'signed-out'; error: string | null }
  | { phase: 'signed-in'; client: ConvexReactClient };

function refusal(error: unknown): string {
  return error instanceof KeyRefused
    ? 'That admin key was refused'
    : 'Could not reach the Sleigh server; try again';
}

/**
 * The admin key gate: nothing but the sign-in screen shows until a key has been accepted. A
 * key kept from earlier in this tab (sessionStorage) is checked again on load.
 */
export function App() {
  const [session, setSession] = useState<Session>(() =>
    storedKey.get() === null ? { phase: 'signed-out', error: null } : { phase: 'checking' },
  );

  useEffect(() => {
    const key = storedKey.get();
    if (key === null) return;
    let live = true;
    const client = createClient(key);
    checkKey(client).then(
      () => {
        if (live) setSession({ phase: 'signed-in', client });
        else void client.close();
      },
      (error: unknown) => {
        void client.close();
        if (!live) return;
        if (error instanceof KeyRefused) storedKey.clear();
        setSession({ phase: 'signed-out', error: refusal(error) });
      },
    );
    return () => {
      live = false;
    };
  }, []);

  const signIn = useCallback(async (key: string): Promise<string | null> => {
    const client = createClient(key);
    try {
      await checkKey(client);
    } catch (error) {
      void client.close();
      return refusal(error);
    }
    storedKey.set(key);
    setSession({ phase: 'signed-in', client });
    return null;
  }, []);

  const signOut = () => {
    storedKey.clear();
    if (session.phase === 'signed-in') void session.client.close();
    setSession({ phase: 'signed-out', error: null });
  };

  if (session.phase === 'checking') {
    return (
      <main className="center" data-testid="checking-key">
        <p role="status">Checking the admin key…</p>
      </main>
    );
  }
  if (session.phase === 'signed-out') {
    return <SignIn onSignIn={signIn} initialError={session.error} />;
  }
  return (
    <ConvexProvider client={session.client}>
      <Layout onSignOut={signOut}>
        <Pages />
      </Layout>
    </ConvexProvider>
  );
}

const NAV = [
  { to: '/data', label: 'Data' },
  { to: '/functions', label: 'Functions' },
  { to: '/logs', label: 'Logs' },
  { to: '/schedules', label: 'Schedules' },
  { to: '/pools', label: 'Pools' },
  { to: '/health', label: 'Health' },
];

function Connection() {
  const state = useConvexConnectionState();
  const connected = state.isWebSocketConnected;
  return (
    <span
      className={`connection ${connected ? 'connected' : 'disconnected'}`}
      role="status"
      data-testid="connection"
    >
      <span className="dot" aria-hidden="true" />
      {connected ? 'Live' : 'Reconnecting…'}
    </span>
  );
}

function Layout({ children, onSignOut }: { children: ReactNode; onSignOut: () => void }) {
  const [menuOpen, setMenuOpen] = useState(false);
  const location = useLocation();
  // A page chosen from the phone menu closes it.
  const [seenPath, setSeenPath] = useState(location.pathname);
  if (seenPath !== location.pathname) {
    setSeenPath(location.pathname);
    setMenuOpen(false);
  }
  // A new page takes the focus, so keyboard and screen-reader users start at its content.
  const main = useRef<HTMLElement>(null);
  const firstPath = useRef(location.pathname);
  useEffect(() => {
    if (location.pathname === firstPath.current) return;
    firstPath.current = '';
    main.current?.focus();
  }, [location.pathname]);

  return (
    <div className="layout">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="menu-button"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen((open) => !open)}
        >
          <span aria-hidden="true">☰</span> Menu
        </button>
        <span className="brand">Sleigh</span>
        <Connection />
        <button type="button" className="sign-out" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <nav id="nav" className={menuOpen ? 'sidebar open' : 'sidebar'} aria-label="Main">
        <ul>
          {NAV.map((item) => (
            <li key={item.to}>
              <NavLink to={item.to}>{item.label}</NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="content" tabIndex={-1} ref={main}>
        <ErrorBoundary resetKey={location.pathname} title="This page failed">
          {children}
        </ErrorBoundary>
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <section data-testid="page-not-found">
      <title>Not found · Sleigh</title>
      <h1>Not found</h1>
      <p>There is no dashboard page here.</p>
    </section>
  );
}

function Pages() {
  return (
    <Routes>
      <Route path="/" element={<Navigate to="/data" replace />} />
      <Route path="/data" element={<DataPage />} />
      <Route path="/data/:table" element={<DataPage />} />
      <Route path="/data/:table/:id" element={<DocumentPage />} />
      <Route path="/functions" element={<FunctionsPage />} />
      <Route path="/functions/*" element={<FunctionsPage />} />
      <Route path="/logs" element={<LogsPage />} />
      <Route path="/schedules" element={<SchedulesPage />} />
      <Route path="/pools" element={<PoolsPage />} />
      <Route path="/pools/:pool" element={<PoolPage />} />
      <Route path="/jobs/:id" element={<JobPage />} />
      <Route path="/jobs/:id/graph" element={<GraphPage />} />
      <Route path="/health" element={<HealthPage />} />
      <Route path="*" element={<NotFound />} />
    </Routes>
  );
}
