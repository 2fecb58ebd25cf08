/**
 * How the sleigh command reads what it is given: flags checked before anything is touched,
 * with exit code 2 and a message naming the flag; `run` and `jobs` against a real server, and
 * against things at --url that are not one.
 */
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { DRIVERS, startServer } from '@sleigh/server/testing';
import { SLEIGH_VERSION } from '@sleigh/server';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { callServer } from './remote.js';
import { project, sleighInProcess } from './test-processes.js';

async function listening(server: Server | ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

describe('sleigh flags', () => {
  it('refuses ports that are not plain port numbers', async () => {
    const dir = project();
    for (const port of ['', ' ', '0x1000', '1e3', '65536', '80.5']) {
      const { code, output } = await sleighInProcess([
        'serve',
        join(dir, 'convex'),
        '--port',
        port,
      ]);
      expect(code, port).toBe(2);
      expect(output).toContain(`--port must be a port number from 0 to 65535, got "${port}"`);
    }
    const negative = await sleighInProcess(['serve', join(dir, 'convex'), '--port', '-1']);
    expect(negative.code).toBe(2);
    expect(negative.output).toContain("Option '--port' argument is ambiguous");
    expect(existsSync(join(dir, '.sleigh'))).toBe(false);
  });

  it('refuses an empty --host instead of listening on every interface', async () => {
    const dir = project();
    const { code, output } = await sleighInProcess(['serve', join(dir, 'convex'), '--host', '']);
    expect(code).toBe(2);
    expect(output).toContain(
      '--host must be an address or host name (0.0.0.0 for every interface)',
    );
    expect(existsSync(join(dir, '.sleigh'))).toBe(false);
  });

  it('refuses admin keys that are short or blank, from the flag or the environment', async () => {
    const dir = project();
    const short = await sleighInProcess(['serve', join(dir, 'convex'), '--admin-key', 'secret']);
    expect(short.code).toBe(2);
    expect(short.output).toContain(
      '--admin-key is not a usable admin key: it has 6 characters; an admin key needs at least 16',
    );
    vi.stubEnv('SLEIGH_ADMIN_KEY', '');
    onTestFinished(() => void vi.unstubAllEnvs());
    const blank = await sleighInProcess(['serve', join(dir, 'convex')]);
    expect(blank.code).toBe(2);
    expect(blank.output).toContain('SLEIGH_ADMIN_KEY is not a usable admin key');
    vi.stubEnv('SLEIGH_ADMIN_KEY', '\u00a0'.repeat(20));
    expect((await sleighInProcess(['serve', join(dir, 'convex')])).output).toContain(
      'only visible ASCII',
    );
    expect(existsSync(join(dir, '.sleigh'))).toBe(false);
  });

  it('refuses a --db that is not a PostgreSQL URL, without a stack trace', async () => {
    const dir = project();
    for (const db of ['postgres://[bad', 'mysql://root@localhost/x', 'sleigh.sqlite']) {
      const { code, output } = await sleighInProcess(['export', join(dir, 'convex'), '--db', db]);
      expect(code, db).toBe(2);
      expect(output).toContain(
        `--db must be a PostgreSQL URL (postgres://user@host:5432/database), got "${db}"`,
      );
      expect(output).not.toMatch(/\n\s+at /);
    }
  });

  it('shows the version and the help anywhere, and refuses unknown commands even with --help', async () => {
    for (const args of [['--version'], ['-v'], ['dev', '--version'], ['jobs', 'failed', '-v']]) {
      const { code, output } = await sleighInProcess(args);
      expect(code, args.join(' ')).toBe(0);
      expect(output).toBe(`sleigh ${SLEIGH_VERSION}`);
    }
    const help = await sleighInProcess(['serve', '--help']);
    expect(help.code).toBe(0);
    expect(help.output).toMatch(/--limit <n> {10}jobs: at most n jobs/);
    expect(help.output).toMatch(/--id <id> {12}jobs retry/);
    const unknown = await sleighInProcess(['foo', '--help']);
    expect(unknown.code).toBe(2);
    expect(unknown.output).toContain('Unknown command "foo"');
    expect((await sleighInProcess(['constructor'])).output).toContain(
      'Unknown command "constructor"',
    );
  });

  it('refuses options a command does not use and arguments beyond what it takes', async () => {
    const cases: Array<[string[], string]> = [
      [['codegen', '--port', '1'], 'sleigh codegen does not take --port'],
      [['run', 'a:b', '--db', 'postgres://x/y'], 'sleigh run does not take --db'],
      [['serve', '--path', 'x'], 'sleigh serve does not take --path'],
      [['import', 'snap', '--limit', '3'], 'sleigh import does not take --limit'],
      [['codegen', 'a', 'b'], 'sleigh codegen takes at most 1 argument; unexpected "b"'],
      [['run', 'a:b', '{}', 'c'], 'sleigh run takes at most 2 arguments; unexpected "c"'],
      [['jobs', 'failed', 'pool', '--id', 'x'], '--id is for sleigh jobs retry'],
    ];
    for (const [args, message] of cases) {
      const { code, output } = await sleighInProcess(args);
      expect(code, args.join(' ')).toBe(2);
      expect(output).toContain(message);
    }
  });
});

describe('sleigh run and jobs against --url', () => {
  it('runs against a URL with a trailing slash, and ignores SLEIGH_DB, which only servers use', async () => {
    const server = await startServer(DRIVERS[0]!);
    vi.stubEnv('SLEIGH_DB', 'not a url');
    onTestFinished(() => void vi.unstubAllEnvs());
    const key = server.adminKey;
    const sent = await sleighInProcess([
      'run',
      'messages:send',
      '{"channel":"c","author":"a","body":"hello"}',
      '--url',
      `${server.url}/`,
      '--admin-key',
      key,
    ]);
    expect(sent).toMatchObject({ code: 0 });
    const counted = await sleighInProcess([
      'run',
      'messages:secretCount',
      '{"channel":"c"}',
      '--url',
      `${server.url}//`,
      '--admin-key',
      key,
    ]);
    expect(counted).toEqual({ code: 0, output: '1' });
    const jobs = await sleighInProcess([
      'jobs',
      'failed',
      'email',
      '--url',
      `${server.url}/`,
      '--admin-key',
      key,
    ]);
    // The app has no workpool: a pool name is a typo, not a pool without dead letters.
    expect(jobs).toEqual({
      code: 1,
      output:
        'sleigh: The server refused (HTTP 404): No workpool named "email" has had a job on this server',
    });
  });

  it('refuses an admin key that cannot be sent, without showing it, and an empty pool name', async () => {
    const server = await startServer(DRIVERS[0]!);
    const run = (key: string) =>
      sleighInProcess([
        'run',
        'messages:secretCount',
        '{}',
        '--url',
        server.url,
        '--admin-key',
        key,
      ]);
    for (const key of ['line\nbreak-0123456789abcdef', 'schlüssel-0123456789abcdef']) {
      const refused = await run(key);
      expect(refused.code).toBe(2);
      expect(refused.output).toBe(
        'sleigh: --admin-key is not a valid admin key: it may hold only visible ASCII characters (no spaces, control or non-ASCII characters)',
      );
    }
    vi.stubEnv('SLEIGH_ADMIN_KEY', 'schlüssel-0123456789abcdef');
    onTestFinished(() => void vi.unstubAllEnvs());
    const fromEnv = await sleighInProcess(['jobs', 'failed', 'p', '--url', server.url]);
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.output).toMatch(/^sleigh: SLEIGH_ADMIN_KEY is not a valid admin key/);
    expect(fromEnv.output).not.toContain('schlüssel');
    const empty = await sleighInProcess([
      'jobs',
      'failed',
      '',
      '--url',
      server.url,
      '--admin-key',
      server.adminKey,
    ]);
    expect(empty).toEqual({
      code: 2,
      output: 'sleigh: sleigh jobs needs a pool name: sleigh jobs failed <pool>',
    });
  });

  it('says when --url is not a URL, or not a Sleigh server', async () => {
    const bad = await sleighInProcess([
      'run',
      'a:b',
      '--url',
      'localhost:3210',
      '--admin-key',
      'k'.repeat(16),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--url must be an http:// or https:// URL, got "localhost:3210"');
    const html = createHttpServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>a blog</html>');
    });
    const htmlUrl = `http://127.0.0.1:${await listening(html)}`;
    const ran = await sleighInProcess([
      'run',
      'a:b',
      '--url',
      htmlUrl,
      '--admin-key',
      'k'.repeat(16),
    ]);
    expect(ran.code).toBe(1);
    expect(ran.output).toBe(
      `sleigh: ${htmlUrl} did not answer as a Sleigh server (HTTP 200, text/html); check --url`,
    );
    const json = createHttpServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"hello":"world"}');
    });
    const jsonUrl = `http://127.0.0.1:${await listening(json)}`;
    const listed = await sleighInProcess([
      'jobs',
      'failed',
      'p',
      '--url',
      jsonUrl,
      '--admin-key',
      'k'.repeat(16),
    ]);
    expect(listed).toEqual({
      code: 1,
      output: `sleigh: ${jsonUrl} did not answer as a Sleigh server; check --url`,
    });
    const closed = createServer();
    const closedPort = await listening(closed);
    await new Promise((resolve) => closed.close(resolve));
    const nobody = await sleighInProcess([
      'jobs',
      'failed',
      'p',
      '--url',
      `http://127.0.0.1:${closedPort}`,
      '--admin-key',
      'k'.repeat(16),
    ]);
    expect(nobody.code).toBe(1);
    expect(nobody.output).toMatch(
      `Cannot reach a Sleigh server at http://127.0.0.1:${closedPort}: connect ECONNREFUSED`,
    );
  });

  it('gives up on a server that accepts and never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    const port = await listening(silent);
    onTestFinished(() => {
      for (const socket of sockets) socket.destroy();
    });
    const access = { url: `http://127.0.0.1:${port}`, adminKey: 'k'.repeat(16) };
    await expect(
      callServer(access, '/api/function', { method: 'POST', body: '{}' }, 300),
    ).rejects.toThrow(`No answer from http://127.0.0.1:${port} within 0.3 s`);
    expect(sockets.size).toBe(1);
  });
});
