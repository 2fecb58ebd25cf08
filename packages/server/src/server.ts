/**
 * A Sleigh server: one HTTP server carrying the HTTP API and the WebSocket sync protocol, over
 * one engine and one store. Every commit of the store feeds the subscriptions, which keep every
 * connected client's queries up to date.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Engine, LIVE_FIGURES, type EngineOptions, type JobRunnerOptions } from '@sleigh/engine';
import type { Store } from '@sleigh/storage';
import { WebSocketServer, type WebSocket } from 'ws';
import { adminKeyProblem, sameKey } from './admin-key.js';
import { handleHttp, type HttpHost } from './http-api.js';
import { SyncSession, type SessionHost } from './sync/session.js';
import { Subscriptions } from './sync/subscriptions.js';

export const SLEIGH_VERSION = '0.1.0';

export interface ServerOptions {
  readonly store: Store;
  readonly functionsDir: string;
  readonly adminKey: string;
  /** Default 3210; 0 picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly buildDir?: string;
  readonly codegen?: boolean;
  readonly deploymentName?: string;
  /** Largest WebSocket frame accepted (default 20 MiB); bigger ones close the socket (1009). */
  readonly maxFrameBytes?: number;
  /**
   * A socket with more than this waiting to be sent (its client is not reading) is closed
   * instead of being sent more; the client reconnects and gets a fresh Transition (default
   * 64 MiB). One message larger than this is still sent whole.
   */
  readonly maxSocketBacklogBytes?: number;
  /** A socket that sends no Connect within this long is closed (default 30 s). */
  readonly connectTimeoutMs?: number;
  /** Idle sockets get a Ping after this long (default 15 s; clients give up after 60 s). */
  readonly pingAfterMs?: number;
  /** Fault injection for tests: return 'drop' to cut a socket instead of answering a mutation. */
  readonly faults?: SessionHost['faults'];
  /** Where the server reports its own troubles (default: console.error). */
  readonly log?: (message: string) => void;
  readonly onWarning?: EngineOptions['onWarning'];
  /** How long a query or mutation may run before it fails (default 10 s; EngineOptions). */
  readonly functionTimeoutMs?: number;
  /** Run scheduled functions in this server (default true). */
  readonly jobs?: boolean | JobRunnerOptions;
  /** On close, how long running scheduled functions may take to finish (default 10 s). */
  readonly shutdownGraceMs?: number;
  /** The dashboard's built files, served at /dashboard (the CLI passes @sleigh/dashboard's). */
  readonly dashboardDir?: string;
}

/** Live figures kept in memory are pushed at most this often (logs) or every second (rates). */
const LOG_PUSH_MS = 250;

/** Mutation-log records older than this are swept: resends come within minutes of a drop. */
const MUTATION_LOG_AGE_MS = 60 * 60_000;

const SYNC_PATH = /^\/api(\/[^/]+)?\/sync$/;

export class SleighServer implements SessionHost, HttpHost {
  readonly startedAt = Date.now();
  readonly version = SLEIGH_VERSION;
  readonly deploymentName: string;
  readonly adminKey: string;
  private readonly sessions = new Set<SyncSession>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribeCommits: () => void;
  private closing: Promise<void> | null = null;
  private readonly shutdownGraceMs: number;
  private readonly maxSocketBacklogBytes: number;
  private readonly connectTimeoutMs: number;
  readonly faults: SessionHost['faults'];
  readonly dashboardDir: string | null;
  readonly log: (message: string) => void;
  private readonly unsubscribeLog: () => void;
  private logPush: NodeJS.Timeout | null = null;

  private constructor(
    readonly engine: Engine,
    readonly subscriptions: Subscriptions,
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    readonly port: number,
    readonly hostname: string,
    options: ServerOptions,
  ) {
    this.adminKey = options.adminKey;
    this.faults = options.faults;
    this.shutdownGraceMs = options.shutdownGraceMs ?? 10_000;
    this.maxSocketBacklogBytes = options.maxSocketBacklogBytes ?? 64 * 1024 * 1024;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    const pingAfter = options.pingAfterMs ?? 15_000;
    this.deploymentName = options.deploymentName ?? 'sleigh';
    const log = options.log ?? ((message: string) => console.error(`sleigh: ${message}`));
    this.log = log;
    this.dashboardDir = options.dashboardDir ?? null;
    const monitor = engine.monitor;
    monitor.version = SLEIGH_VERSION;
    monitor.gauge('subscriptions', () => subscriptions.subscriptionCount);
    monitor.gauge('connections', () => this.sessions.size);
    this.unsubscribeCommits = engine.store.onCommit((commit) => {
      monitor.commitHeard();
      subscriptions.onCommit(commit);
    });
    // Figures that no commit announces: the log pushes soon after an execution, rates each second.
    this.unsubscribeLog = monitor.executions.onRecord(() => {
      this.logPush ??= setTimeout(() => {
        this.logPush = null;
        subscriptions.invalidatePaths([LIVE_FIGURES.logs]);
      }, LOG_PUSH_MS);
    });
    http.on('request', (req, res) => void handleHttp(this, req, res));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (!SYNC_PATH.test(path)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, log));
    });
    this.timers.push(
      setInterval(
        () => {
          const now = Date.now();
          for (const session of this.sessions)
            if (now - session.lastSentAt >= pingAfter) session.ping();
        },
        Math.min(5000, pingAfter),
      ),
      setInterval(() => subscriptions.invalidatePaths(LIVE_FIGURES.everySecond), 1000),
      setInterval(() => {
        this.engine
          .sweepMutationLog(MUTATION_LOG_AGE_MS)
          .catch((error: unknown) => log(`sweeping the mutation log failed: ${String(error)}`));
      }, 10 * 60_000),
    );
    for (const timer of this.timers) timer.unref();
  }

  static async start(options: ServerOptions): Promise<SleighServer> {
    const keyProblem = adminKeyProblem(options.adminKey);
    if (keyProblem !== null) throw new TypeError(`The admin key is not usable: ${keyProblem}`);
    const log = options.log ?? ((message: string) => console.error(`sleigh: ${message}`));
    const engine = await Engine.start({
      store: options.store,
      functionsDir: options.functionsDir,
      ...(options.buildDir === undefined ? {} : { buildDir: options.buildDir }),
      ...(options.codegen === undefined ? {} : { codegen: options.codegen }),
      ...(options.deploymentName === undefined ? {} : { deploymentName: options.deploymentName }),
      ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
      ...(options.functionTimeoutMs === undefined
        ? {}
        : { functionTimeoutMs: options.functionTimeoutMs }),
    });
    const head = await options.store.read((tx) => tx.timestamp());
    const subscriptions = new Subscriptions(engine, head, (error) =>
      log(`updating subscriptions failed: ${(error as Error).message}`),
    );
    const http = createServer();
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxFrameBytes ?? 20 * 1024 * 1024,
    });
    const hostname = options.host ?? '127.0.0.1';
    const port = await new Promise<number>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port ?? 3210, hostname, () => {
        http.off('error', reject);
        const address = http.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    if (options.jobs !== false) {
      engine.startJobs({ log, ...(typeof options.jobs === 'object' ? options.jobs : {}) });
    }
    return new SleighServer(engine, subscriptions, http, wss, port, hostname, options);
  }

  get url(): string {
    return `http://${this.hostname}:${this.port}`;
  }

  get connections(): number {
    return this.sessions.size;
  }

  private accept(ws: WebSocket, log: (message: string) => void): void {
    const session = new SyncSession(this, {
      send: (text) => {
        if (ws.readyState !== ws.OPEN) return;
        // A client that does not read would make the server hold everything for it: let it go
        // (it reconnects, and catches up with one Transition).
        if (ws.bufferedAmount > this.maxSocketBacklogBytes) {
          log(
            `closing a WebSocket whose client is not reading (${ws.bufferedAmount} bytes waiting)`,
          );
          ws.close(1013, 'The client is not reading what the server sends; reconnect');
          return;
        }
        ws.send(text);
      },
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
    });
    this.sessions.add(session);
    const connectBy = setTimeout(() => {
      if (session.awaitingConnect) {
        session.fail(`No Connect message within ${this.connectTimeoutMs} ms of opening the socket`);
      }
    }, this.connectTimeoutMs);
    connectBy.unref();
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        session.fail('Binary frames are not part of the sync protocol; send JSON text frames');
        return;
      }
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      session.receive(bytes.toString('utf8'));
    });
    ws.on('close', () => {
      clearTimeout(connectBy);
      session.shutdown();
      this.sessions.delete(session);
    });
    ws.on('error', (error) => {
      // An oversized or broken frame: ws closes the socket (1009 / 1002); only this client is affected.
      log(`WebSocket error from a client: ${error.message}`);
    });
  }

  checkAdminKey(key: string): boolean {
    return sameKey(this.adminKey, key);
  }

  /** Waits until this server has heard of every commit up to `ts` (another server's, say). */
  async catchUp(ts: bigint): Promise<boolean> {
    if (this.subscriptions.ts >= ts) return true;
    return this.engine.store.whenDelivered(ts, 3000);
  }

  /** Reloads the functions folder; every subscription re-runs on the new code. */
  async reload(): Promise<void> {
    await this.engine.reload();
    this.subscriptions.invalidateAll();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Running jobs finish (or are handed back) while clients can still watch them.
      await this.engine.stopJobs(this.shutdownGraceMs);
      for (const timer of this.timers) clearInterval(timer);
      if (this.logPush !== null) clearTimeout(this.logPush);
      this.unsubscribeLog();
      this.unsubscribeCommits();
      this.subscriptions.close();
      for (const client of this.wss.clients) client.close(1001, 'Server shutting down');
      for (const session of this.sessions) session.shutdown();
      this.wss.close();
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http.close(() => resolve()));
    })();
    return this.closing;
  }
}
