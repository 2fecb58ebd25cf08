/**
 * Calls to a running server's HTTP API, for `run` and `jobs`: with a deadline (a server that
 * accepts and never answers must not hang the command) and with errors that say which of
 * "nothing there", "too slow" and "not a Sleigh server" happened.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, dataDirOf } from './context.js';
import { printable } from './printable.js';

export interface Access {
  readonly url: string;
  readonly adminKey: string;
}

/** The server's base URL, checked, without a trailing slash (paths are appended to it). */
export function serverUrl(value: string | undefined): string {
  const [text, source] =
    value !== undefined
      ? [value, '--url']
      : [process.env.SLEIGH_URL ?? 'http://127.0.0.1:3210', 'SLEIGH_URL'];
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`${source} must be a URL like http://127.0.0.1:3210, got "${text}"`, 2);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(`${source} must be an http:// or https:// URL, got "${text}"`, 2);
  if (url.search !== '' || url.hash !== '')
    throw new CliError(`${source} must not have a query or a fragment, got "${text}"`, 2);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Where the running server is, and the admin key to use with it. */
export function serverAccess(values: {
  url?: string | undefined;
  'admin-key'?: string | undefined;
  functions?: string | undefined;
  'data-dir'?: string | undefined;
}): Access {
  const url = serverUrl(values.url);
  const given = values['admin-key'] ?? process.env.SLEIGH_ADMIN_KEY;
  if (given !== undefined) {
    const source = values['admin-key'] === undefined ? 'SLEIGH_ADMIN_KEY' : '--admin-key';
    if (given.trim() === '') throw new CliError(`${source} is empty`, 2);
    return { url, adminKey: checkedKey(given.trim(), source, 2) };
  }
  const keyFile = join(
    dataDirOf({ functionsDir: values.functions, dataDir: values['data-dir'] }),
    'admin_key',
  );
  const adminKey = existsSync(keyFile) ? readFileSync(keyFile, 'utf8').trim() : '';
  if (adminKey === '') {
    throw new CliError(
      `No admin key: pass --admin-key, set SLEIGH_ADMIN_KEY, or run from the project (${keyFile})`,
    );
  }
  return { url, adminKey: checkedKey(adminKey, `The admin key in ${keyFile}`, 1) };
}

/**
 * Admin keys are visible ASCII (servers refuse any other). Another key cannot even be sent in a
 * header: fetch would fail with a message that blames the server and shows the key.
 */
function checkedKey(key: string, source: string, exitCode: number): string {
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new CliError(
      `${source} is not a valid admin key: it may hold only visible ASCII characters (no spaces, control or non-ASCII characters)`,
      exitCode,
    );
  }
  return key;
}

export interface Answer {
  readonly status: number;
  /** The parsed JSON body; every answer of Sleigh's API has one. */
  readonly body: Record<string, unknown>;
}

export async function callServer(
  access: Access,
  path: string,
  init: { method?: string; body?: string },
  timeoutMs: number,
): Promise<Answer> {
  const target = `${access.url}${path}`;
  let response: Response;
  let text: string;
  try {
    response = await fetch(target, {
      ...init,
      headers: { 'Content-Type': 'application/json', Authorization: `Convex ${access.adminKey}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') {
      throw new CliError(`No answer from ${access.url} within ${timeoutMs / 1000} s`);
    }
    // fetch says only "fetch failed"; the cause says why (ECONNREFUSED, ENOTFOUND, ...).
    const cause = (error as Error).cause as Error | undefined;
    throw new CliError(
      `Cannot reach a Sleigh server at ${access.url}: ${cause?.message ?? (error as Error).message}`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    const type = printable(response.headers.get('content-type') ?? 'no content type');
    throw new CliError(
      `${access.url} did not answer as a Sleigh server (HTTP ${response.status}, ${type}); check --url`,
    );
  }
  return { status: response.status, body: body as Record<string, unknown> };
}

/** A refusal's message: Sleigh's errors carry { code, message }. */
export function refusal(answer: Answer): string {
  const message = answer.body.message;
  return `The server refused (HTTP ${answer.status}): ${typeof message === 'string' ? printable(message) : 'no details'}`;
}
