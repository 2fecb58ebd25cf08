/**
 * The HTTP API (PROTOCOL.md §3): running functions over plain requests, as ConvexHttpClient
 * and `curl` do, plus health routes.
 *
 *   POST /api/query | /api/mutation | /api/action   {path, args, format}
 *   GET  /api/query?path=&args=&format=
 *   POST /api/run/<dir>/<module>/<function>          {args, format}
 *   POST /api/function                                {path, args, format}  (any kind)
 *   POST /api/query_ts → {ts};  POST /api/query_at_ts {path, args, ts};  POST /api/query_batch {queries}
 *   GET  /instance_info, /version, /instance_name
 *   GET  /metrics (Prometheus, admin key), /dashboard/… (dashboard-assets.ts)
 *   GET  /api/sleigh/pools/<pool>/failed;  POST …/retry | …/pause | …/resume  (admin key)
 *
 * A function's own failure is HTTP 560 with `{status: "error", errorMessage, errorData?}`;
 * a malformed request is 400 with `{code, message}`; a bad key is 401.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { CallOptions, Engine, FunctionKind } from '@sleigh/engine';
import { jsonToConvex, type JSONValue, type Value } from 'convex/values';
import { sameKey } from './admin-key.js';
import { DASHBOARD_PATH, serveDashboard } from './dashboard-assets.js';
import { renderMetrics } from './metrics.js';
import { preview } from './preview.js';
import type { Subscriptions } from './sync/subscriptions.js';

export interface HttpHost {
  readonly engine: Engine;
  readonly subscriptions: Subscriptions;
  readonly adminKey: string;
  readonly startedAt: number;
  readonly version: string;
  readonly deploymentName: string;
  /** The dashboard's built files (null: not served). */
  readonly dashboardDir: string | null;
  /** Where the server's own messages go (its `log` option). */
  readonly log: (message: string) => void;
}

/** Function failures: the JS client accepts this status as "the function threw". */
const STATUS_FUNCTION_FAILED = 560;
const MAX_BODY = 20 * 1024 * 1024;
/** Routes that answer POST alone (/api/query answers GET too). */
const POST_ROUTES = new Set([
  '/api/mutation',
  '/api/action',
  '/api/function',
  '/api/query_ts',
  '/api/query_at_ts',
  '/api/query_batch',
]);

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, {
    'Content-Type': `${type}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendError(res: ServerResponse, error: HttpError): void {
  // The rest of a body too large was not read: the connection cannot carry another request.
  if (error.status === 413) res.setHeader('Connection', 'close');
  send(res, error.status, JSON.stringify({ code: error.code, message: error.message }));
}

/** A percent-encoded path segment, decoded; a malformed escape is the caller's error. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(
      400,
      'BadPath',
      `The path segment "${segment.slice(0, 100)}" holds a malformed percent-escape`,
    );
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new HttpError(
        413,
        'PayloadTooLarge',
        `Request bodies are limited to ${MAX_BODY} bytes`,
      );
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'BadJsonBody', 'The request body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'BadJsonBody', 'The request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

type Format = 'convex_encoded_json' | 'json';

function formatOf(value: unknown): Format {
  if (value === undefined || value === null || value === 'convex_encoded_json')
    return 'convex_encoded_json';
  if (value === 'json') return 'json';
  throw new HttpError(
    400,
    'BadFormat',
    `format must be "convex_encoded_json" or "json", got ${preview(value)}`,
  );
}

/** `args` as an object, or an array holding one object (the JS client sends both). */
function argsOf(value: unknown): JSONValue {
  const args = Array.isArray(value)
    ? value.length === 1
      ? (value[0] as unknown)
      : undefined
    : (value ?? {});
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new HttpError(400, 'BadArgs', 'args must be an object (or an array holding one object)');
  }
  return args as JSONValue;
}

/** A timestamp as /api/query_ts gave it (a decimal string, or a number), not in the future. */
async function timestampOf(host: HttpHost, value: unknown): Promise<bigint> {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !/^\d{1,20}$/.test(text)) {
    throw new HttpError(
      400,
      'BadTimestamp',
      `ts must be a timestamp from /api/query_ts (a string of digits), not ${preview(value)}`,
    );
  }
  const ts = BigInt(text);
  const latest = await host.engine.store.read((tx) => tx.timestamp());
  if (ts > latest) {
    throw new HttpError(
      400,
      'BadTimestamp',
      `ts ${ts} is later than this deployment's latest timestamp ${latest}`,
    );
  }
  return ts;
}

function pathOf(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new HttpError(400, 'BadPath', 'path must be a function path such as "messages:list"');
  }
  return value;
}

/** A Convex value as plain JSON, for `format: "json"`. */
function plainJson(value: Value): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number')
    return Number.isFinite(value) ? (Object.is(value, -0) ? 0 : value) : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(plainJson);
  return Object.fromEntries(
    Object.entries(value as Record<string, Value>).map(([k, v]) => [k, plainJson(v)]),
  );
}

/**
 * Whether a request to one of Sleigh's own operator routes (`/metrics`, `/api/sleigh/…`) sent
 * the admin key: as `Bearer <key>` (what Prometheus and most tools send) or `Convex <key>`,
 * the scheme in any case; a wrong one is refused as such. Convex's function routes read
 * `Bearer` as a user's token instead.
 */
function sentAdminKey(req: IncomingMessage, host: HttpHost): boolean {
  const header = req.headers.authorization ?? '';
  if (header === '') return false;
  const match = /^(?:bearer|convex)\s+(.+)$/i.exec(header);
  if (match === null || !sameKey(host.adminKey, match[1]!.trim())) {
    throw new HttpError(401, 'BadAdminKey', 'The admin key is not valid for this deployment');
  }
  return true;
}

function callOptions(req: IncomingMessage, host: HttpHost): CallOptions {
  const header = req.headers.authorization;
  if (header === undefined || header === '') return { caller: 'client' };
  if (header.startsWith('Convex ')) {
    if (!sameKey(host.adminKey, header.slice('Convex '.length).trim())) {
      throw new HttpError(401, 'BadAdminKey', 'The admin key is not valid for this deployment');
    }
    return { caller: 'admin' };
  }
  if (header.startsWith('Bearer ')) {
    throw new HttpError(
      401,
      'Unauthenticated',
      'User authentication (JWT) is not supported by Sleigh yet',
    );
  }
  throw new HttpError(
    401,
    'BadAuthorization',
    'Authorization must be "Convex <admin key>" or "Bearer <token>"',
  );
}

type Outcome =
  | { ok: true; json: string; logLines: string[] }
  | { ok: false; error: { message: string; data?: JSONValue | undefined }; logLines: string[] };

function resultBody(outcome: Outcome, format: Format): { status: number; body: string } {
  const logLines = JSON.stringify(outcome.logLines);
  if (outcome.ok) {
    const value =
      format === 'json'
        ? JSON.stringify(plainJson(jsonToConvex(JSON.parse(outcome.json) as JSONValue)))
        : outcome.json;
    return { status: 200, body: `{"status":"success","value":${value},"logLines":${logLines}}` };
  }
  return {
    status: STATUS_FUNCTION_FAILED,
    body: JSON.stringify({
      status: 'error',
      errorMessage: outcome.error.message,
      ...(outcome.error.data === undefined ? {} : { errorData: outcome.error.data }),
      logLines: outcome.logLines,
    }),
  };
}

async function runKind(
  host: HttpHost,
  kind: FunctionKind | null,
  path: string,
  args: JSONValue,
  options: CallOptions,
): Promise<Outcome> {
  switch (kind) {
    case 'query':
      return host.engine.query(path, args, options);
    case 'mutation':
      return host.engine.mutation(path, args, options);
    case 'action':
      return host.engine.action(path, args, options);
    case null:
      return host.engine.run(path, args, options);
  }
}

async function route(host: HttpHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  // HEAD is GET without the body (Node leaves the body out): health checks use it.
  const method = req.method === 'HEAD' || req.method === undefined ? 'GET' : req.method;
  if (method === 'GET' && (path === '/instance_info' || path === '/api/instance_info')) {
    return send(
      res,
      200,
      JSON.stringify({
        name: host.deploymentName,
        version: host.version,
        uptimeSeconds: Math.round((Date.now() - host.startedAt) / 1000),
        subscriptions: host.subscriptions.size,
        driver: host.engine.store.driver,
      }),
    );
  }
  if (method === 'GET' && (path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`))) {
    return serveDashboard(host.dashboardDir, path, req, res);
  }
  if (method === 'GET' && path === '/metrics') {
    if (!sentAdminKey(req, host)) {
      throw new HttpError(
        401,
        'MissingAdminKey',
        'Metrics need the admin key: send "Authorization: Bearer <admin key>"',
      );
    }
    const metrics = await renderMetrics(host.engine);
    res.writeHead(200, { 'Content-Type': metrics.contentType });
    res.end(metrics.body);
    return;
  }
  if (method === 'GET' && path === '/version') return send(res, 200, host.version, 'text/plain');
  if (method === 'GET' && path === '/instance_name')
    return send(res, 200, host.deploymentName, 'text/plain');

  if (method === 'GET' && path === '/api/query') {
    const options = callOptions(req, host);
    let args: unknown = {};
    const raw = url.searchParams.get('args');
    if (raw !== null) {
      try {
        args = JSON.parse(raw);
      } catch {
        throw new HttpError(400, 'BadArgs', 'args must be a JSON object');
      }
    }
    const format = formatOf(url.searchParams.get('format') ?? undefined);
    const outcome = await host.engine.query(
      pathOf(url.searchParams.get('path')),
      argsOf(args),
      options,
    );
    const { status, body } = resultBody(outcome, format);
    return send(res, status, body);
  }
  const pool = /^\/api\/sleigh\/pools\/([^/]+)\/(failed|retry|pause|resume)$/.exec(path);
  if (pool !== null) return poolAdmin(host, req, res, decodeSegment(pool[1]!), pool[2]!);
  if (method !== 'POST') {
    if (POST_ROUTES.has(path) || path.startsWith('/api/run/') || path === '/api/query') {
      const allowed = path === '/api/query' ? 'GET or POST' : 'POST';
      res.setHeader('Allow', `${allowed.replace(' or', ',')}, OPTIONS`);
      throw new HttpError(
        405,
        'MethodNotAllowed',
        `${path} takes ${allowed}, not ${req.method ?? method}`,
      );
    }
    throw new HttpError(404, 'NotFound', `No route for ${req.method ?? method} ${path}`);
  }

  const kinds: Record<string, FunctionKind | null> = {
    '/api/query': 'query',
    '/api/mutation': 'mutation',
    '/api/action': 'action',
    '/api/function': null,
  };
  if (path in kinds) {
    const options = callOptions(req, host);
    const body = await readJson(req);
    const format = formatOf(body.format);
    const outcome = await runKind(
      host,
      kinds[path]!,
      pathOf(body.path),
      argsOf(body.args),
      options,
    );
    const { status, body: text } = resultBody(outcome, format);
    return send(res, status, text);
  }
  if (path.startsWith('/api/run/')) {
    const options = callOptions(req, host);
    const segments = path.slice('/api/run/'.length).split('/').filter(Boolean).map(decodeSegment);
    if (segments.length < 2)
      throw new HttpError(400, 'BadPath', 'Use /api/run/<module path>/<function>');
    const functionPath = `${segments.slice(0, -1).join('/')}:${segments[segments.length - 1]}`;
    const body = await readJson(req);
    const format = formatOf(body.format);
    const outcome = await runKind(host, null, functionPath, argsOf(body.args), options);
    const { status, body: text } = resultBody(outcome, format);
    return send(res, status, text);
  }
  if (path === '/api/query_ts') {
    await readBody(req);
    const ts = await host.engine.store.read((tx) => tx.timestamp());
    return send(res, 200, JSON.stringify({ ts: ts.toString() }));
  }
  if (path === '/api/query_at_ts') {
    const options = callOptions(req, host);
    const body = await readJson(req);
    const format = formatOf(body.format);
    const ts = await timestampOf(host, body.ts);
    const outcome = await host.engine.query(pathOf(body.path), argsOf(body.args), options);
    // Queries read the latest snapshot; the result holds at `ts` only if nothing it read changed since.
    if (outcome.ok && outcome.ts > ts && host.subscriptions.changedSince(outcome, ts) !== false) {
      const { status, body: text } = resultBody(
        {
          ok: false,
          error: {
            message: `The data this query reads changed after timestamp ${ts}; read again at a newer timestamp`,
          },
          logLines: outcome.logLines,
        },
        format,
      );
      return send(res, status, text);
    }
    const { status, body: text } = resultBody(outcome, format);
    return send(res, status, text);
  }
  if (path === '/api/query_batch') {
    const options = callOptions(req, host);
    const body = await readJson(req);
    if (!Array.isArray(body.queries))
      throw new HttpError(400, 'BadBatch', 'queries must be an array');
    const queries = (body.queries as Array<Record<string, unknown>>).map((query) => ({
      path: pathOf(query?.path),
      args: argsOf(query?.args),
      format: formatOf(query?.format),
      options,
    }));
    const { outcomes } = await host.engine.queryBatch(queries);
    const results = outcomes.map((outcome, i) => resultBody(outcome, queries[i]!.format).body);
    return send(res, 200, `{"results":[${results.join(',')}]}`);
  }
  throw new HttpError(404, 'NotFound', `No route for ${method} ${path}`);
}

/** A page of retrying every dead letter: `<since>.<key in base64url>`. */
function encodeRetryCursor(cursor: { after: Uint8Array; since: number }): string {
  return `${cursor.since}.${Buffer.from(cursor.after).toString('base64url')}`;
}

function decodeRetryCursor(value: unknown): { after: Uint8Array; since: number } | null {
  if (value === undefined || value === null) return null;
  const match = typeof value === 'string' ? /^(\d{1,16})\.([\w-]{1,4000})$/.exec(value) : null;
  if (match === null) {
    throw new HttpError(
      400,
      'BadCursor',
      `cursor must be one this API returned, not ${preview(value)}`,
    );
  }
  return { since: Number(match[1]), after: Buffer.from(match[2]!, 'base64url') };
}

/**
 * Dead letters, for operators (admin key only): `GET /api/sleigh/pools/<pool>/failed?limit=n`
 * lists a pool's oldest jobs that failed for good, and says whether there are `more`;
 * `POST …/retry` with `{ids}` runs those again, and with `{limit?, cursor?}` a page of all of
 * them, answering how many it restarted, the dead letters it `skipped` (and why) and the `next`
 * page's cursor. `POST …/pause` and `POST …/resume` pause or resume the pool fleet-wide and
 * answer whether it `wasPaused`. A pool that never had a job is a 404, so that a typo is not
 * "no failed jobs".
 */
async function poolAdmin(
  host: HttpHost,
  req: IncomingMessage,
  res: ServerResponse,
  pool: string,
  action: string,
): Promise<void> {
  if (!sentAdminKey(req, host)) {
    throw new HttpError(
      401,
      'MissingAdminKey',
      'Pool administration needs the admin key: send "Authorization: Bearer <admin key>" (or "Convex <admin key>")',
    );
  }
  const limitOf = (value: unknown, fallback: number): number => {
    if (value === undefined || value === null) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw new HttpError(
        400,
        'BadLimit',
        `limit must be a whole number from 1 to 100000, not ${preview(value)}`,
      );
    }
    return n;
  };
  const known = async () => {
    const names = await host.engine.poolNames();
    if (names.includes(pool)) return;
    const shown = names.slice(0, 20).map((name) => preview(name));
    throw new HttpError(
      404,
      'NoSuchPool',
      `No workpool named ${preview(pool)} has had a job on this server${names.length === 0 ? '' : ` (its pools: ${shown.join(', ')}${names.length > 20 ? ', …' : ''})`}`,
    );
  };
  try {
    if (action === 'failed' && req.method === 'GET') {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const limit = limitOf(url.searchParams.get('limit'), 100);
      await known();
      // One more than asked says whether there are more.
      const jobs = await host.engine.failedPoolJobs(pool, limit + 1);
      return send(
        res,
        200,
        JSON.stringify({ jobs: jobs.slice(0, limit), more: jobs.length > limit }),
      );
    }
    if (action === 'retry' && req.method === 'POST') {
      const body = await readJson(req);
      const ids = body.ids === undefined ? null : body.ids;
      if (ids !== null && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
        throw new HttpError(400, 'BadIds', 'ids must be a list of job ids');
      }
      const limit = limitOf(body.limit, 1000);
      await known();
      if (ids !== null) {
        // Given ids are each checked: one that cannot be retried is refused, saying why.
        const retried = await host.engine.retryFailedPoolJobs(pool, ids as string[], limit);
        return send(res, 200, JSON.stringify({ retried, skipped: [], next: null }));
      }
      const page = await host.engine.retryFailedPoolJobsPage(
        pool,
        decodeRetryCursor(body.cursor),
        limit,
      );
      return send(
        res,
        200,
        JSON.stringify({
          retried: page.retried,
          skipped: page.skipped,
          next: page.next === null ? null : encodeRetryCursor(page.next),
        }),
      );
    }
    if ((action === 'pause' || action === 'resume') && req.method === 'POST') {
      await known();
      const wasPaused = await host.engine.setPoolPaused(pool, action === 'pause');
      return send(res, 200, JSON.stringify({ paused: action === 'pause', wasPaused }));
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    // The engine's own refusals (a bad id, a pool name) are the caller's to fix.
    if (error instanceof Error && error.name === 'SyscallError') {
      throw new HttpError(400, 'BadRequest', error.message);
    }
    throw error;
  }
  throw new HttpError(
    405,
    'MethodNotAllowed',
    `Use ${action === 'failed' ? 'GET' : 'POST'} for ${action}, not ${req.method ?? '?'}`,
  );
}

export async function handleHttp(
  host: HttpHost,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // Browsers call the API from other origins (a Vite dev server, a static site).
  res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*');
  res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization, Convex-Client');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
  if (req.method === 'OPTIONS') {
    res.writeHead(204);
    res.end();
    return;
  }
  try {
    await route(host, req, res);
  } catch (error) {
    if (error instanceof HttpError) return sendError(res, error);
    // The client went away mid-request: nobody is left to answer, and nothing failed here.
    // (Not `req.destroyed`: a request whose body was read to the end is destroyed too.)
    const socket = req.socket as Socket | null;
    if (
      socket === null ||
      socket.destroyed ||
      (error as NodeJS.ErrnoException).code === 'ECONNRESET'
    )
      return;
    host.log(
      `HTTP ${req.method ?? ''} ${req.url?.slice(0, 200) ?? ''} failed: ${(error as Error).stack ?? String(error)}`,
    );
    // Part of an answer already went out: only closing the connection tells the client.
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(
      res,
      new HttpError(500, 'InternalServerError', 'The server failed to handle this request'),
    );
  }
}
