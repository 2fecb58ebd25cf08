/**
 * Serves the dashboard's built files (packages/dashboard, a single-page app) under
 * `/dashboard/`. Files are public, like any web app's; everything they show comes from the
 * admin-only `_system/*` functions, which need the admin key the page asks for. Paths that are
 * not files get index.html, so the app's own routes survive a reload.
 *
 * The page holds the admin key (in its tab's sessionStorage), so it is locked down: it runs only
 * its own scripts and styles, talks only to this server, and cannot be framed by another site
 * (clickjacking its cancel and retry buttons).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

export const DASHBOARD_PATH = '/dashboard';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Headers every dashboard response carries. */
export const DASHBOARD_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': [
    "default-src 'self'",
    // 'self' covers the WebSocket to this same host and port (CSP level 3).
    "connect-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  // For browsers that predate frame-ancestors.
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
};

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Answers a GET under /dashboard from `dir` (null: the dashboard is not built or not given). */
export async function serveDashboard(
  dir: string | null,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (path === DASHBOARD_PATH) {
    res.writeHead(302, { ...DASHBOARD_SECURITY_HEADERS, Location: `${DASHBOARD_PATH}/` });
    res.end();
    return;
  }
  const index = dir === null ? null : join(dir, 'index.html');
  if (dir === null || index === null || !(await isFile(index))) {
    const body =
      'The dashboard is not built. Run `npm run build -w @sleigh/dashboard` (npm ci does it), then reload.\n';
    res.writeHead(404, {
      ...DASHBOARD_SECURITY_HEADERS,
      'Content-Type': 'text/plain; charset=utf-8',
    });
    res.end(body);
    return;
  }
  let relative: string;
  try {
    relative = decodeURIComponent(path.slice(DASHBOARD_PATH.length + 1));
  } catch {
    relative = '';
  }
  const candidate = normalize(join(dir, relative));
  const inside = candidate.startsWith(dir.endsWith(sep) ? dir : dir + sep);
  const found = inside && relative !== '' && (await isFile(candidate));
  // The app's own routes get the page (function paths may hold dots: "legacy.js:default"); an
  // asset that is not there (one of an older build) is a 404, not the page served as a script.
  if (!found && relative.startsWith('assets/')) {
    res.writeHead(404, {
      ...DASHBOARD_SECURITY_HEADERS,
      'Content-Type': 'text/plain; charset=utf-8',
    });
    res.end(req.method === 'HEAD' ? undefined : 'No such dashboard file\n');
    return;
  }
  const file = found ? candidate : index;
  const hashed = file !== index && relative.startsWith('assets/');
  res.writeHead(200, {
    ...DASHBOARD_SECURITY_HEADERS,
    'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
    // Built assets carry a content hash in their names; the page itself must always be fresh.
    'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}
