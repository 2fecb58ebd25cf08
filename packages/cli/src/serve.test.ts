/**
 * `sleigh serve` when it cannot start: a clear message, and nothing left behind that was not
 * there before (no `.sleigh/`, no admin key, no migrated PostgreSQL schema). And how it stops:
 * `sleigh dev` when whoever reads its output goes away, `sleigh serve` signalled the moment it
 * says it is ready.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PostgresStore } from '@sleigh/storage-postgres';
import { databaseUrl } from '@sleigh/testing';
import { ConvexHttpClient } from 'convex/browser';
import { makeFunctionReference } from 'convex/server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BIN, project, sleigh, sleighInProcess } from './test-processes.js';

const logs = makeFunctionReference<'query', Record<string, never>, null>('rules:logs');
const forget = makeFunctionReference<'mutation', Record<string, never>, string>('careless:forget');

function breakBundle(dir: string): void {
  writeFileSync(join(dir, 'convex', 'broken.ts'), 'export const oops = ;\n');
}

describe('sleigh serve that cannot start', () => {
  it('leaves no data directory behind, whatever stopped it', async () => {
    const dir = project();
    const functions = join(dir, 'convex');
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const takenPort = String((taken.address() as AddressInfo).port);

    const inUse = await sleighInProcess(['serve', functions, '--port', takenPort]);
    expect(inUse).toEqual({
      code: 1,
      output: `sleigh: Port ${takenPort} is already in use; pick another with --port`,
    });
    const unknownHost = await sleighInProcess([
      'serve',
      functions,
      '--host',
      'no-such-host.invalid',
    ]);
    expect(unknownHost).toEqual({
      code: 1,
      output: 'sleigh: --host no-such-host.invalid is not a known host name',
    });
    const notOurs = await sleighInProcess([
      'serve',
      functions,
      '--port',
      '0',
      '--host',
      '192.0.2.1',
    ]);
    expect(notOurs).toEqual({
      code: 1,
      output: 'sleigh: --host 192.0.2.1 is not an address of this machine',
    });
    const missing = await sleighInProcess(['serve', join(dir, 'nowhere'), '--port', '0']);
    expect(missing.code).toBe(1);
    expect(missing.output).toMatch(/Functions folder .*nowhere does not exist or is not a folder/);
    expect(existsSync(join(dir, '.sleigh'))).toBe(false);

    breakBundle(dir);
    const broken = await sleighInProcess(['serve', functions, '--port', '0']);
    expect(broken.code).toBe(1);
    expect(broken.output).toMatch(/broken\.ts/);
    expect(broken.output).not.toMatch(/\n\s+at /);
    expect(existsSync(join(dir, '.sleigh'))).toBe(false);
  });

  it('keeps an existing data directory and its data, removing only what the failed start made', async () => {
    const dir = project();
    const first = await sleigh(['serve', 'convex', '--port', '0'], dir);
    expect(first.url).not.toBe('');
    expect(await first.stop()).toBe(0);
    const before = readdirSync(join(dir, '.sleigh')).sort();
    expect(before).toEqual(expect.arrayContaining(['admin_key', 'sleigh.sqlite']));
    breakBundle(dir);
    expect((await sleighInProcess(['serve', join(dir, 'convex'), '--port', '0'])).code).toBe(1);
    expect(readdirSync(join(dir, '.sleigh')).sort()).toEqual(before);

    // A data directory that exists but has never held a store: the new store goes again.
    const other = join(dir, 'other-data');
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    expect(
      (await sleighInProcess(['serve', join(dir, 'convex'), '--port', '0', '--data-dir', other]))
        .code,
    ).toBe(1);
    expect(existsSync(other)).toBe(false);
  });

  it('drops a PostgreSQL schema it created, and keeps one that was there', async () => {
    const dir = project();
    breakBundle(dir);
    const schema = `cli_${randomBytes(6).toString('hex')}`;
    onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), schema));
    const args = ['serve', join(dir, 'convex'), '--port', '0', '--db', databaseUrl()];
    expect((await sleighInProcess([...args, '--schema', schema])).code).toBe(1);
    expect(await PostgresStore.inspectSchema(databaseUrl(), schema)).toBe('absent');

    const store = await PostgresStore.open({ connectionString: databaseUrl(), schema });
    await store.close();
    expect((await sleighInProcess([...args, '--schema', schema])).code).toBe(1);
    expect(await PostgresStore.inspectSchema(databaseUrl(), schema)).toBe('sleigh');
  });
});

describe('sleigh dev whose reader goes away', () => {
  it('shuts down cleanly when its output pipe closes (sleigh dev | head -n 1)', async () => {
    const dir = project();
    const pipeline = spawn(
      'bash',
      ['-o', 'pipefail', '-c', `"${process.execPath}" "${BIN}" dev convex --port 0 | head -n 1`],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    onTestFinished(() => void pipeline.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    pipeline.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    pipeline.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => pipeline.on('exit', resolve));
    let finished = false;
    void exited.then(() => (finished = true));
    while (!stdout.includes('\n')) await new Promise((resolve) => setTimeout(resolve, 20));
    // head has its line and is gone; the next line sleigh prints (a query's log) finds no reader.
    const client = new ConvexHttpClient(stdout.match(/Sleigh ready at (\S+)/)![1]!);
    for (let tries = 0; !finished && tries < 100; tries++) {
      await client.query(logs, {}).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const code = await exited;
    expect(stdout).toMatch(/^Sleigh ready at http:\/\/127\.0\.0\.1:\d+\n$/);
    expect(stderr).toBe('Shutting down\n');
    // pipefail: sleigh's own exit status, which is 0 after a clean shutdown.
    expect(code).toBe(0);
  });
});

describe('sleigh serve stopped the moment it is ready', () => {
  it('shuts down cleanly on a SIGTERM sent as soon as "Sleigh ready" is read', async () => {
    // A supervisor may act on the line at once. Its signal handlers are in place before the
    // line is written, so the signal is a clean stop, never the default (death by SIGTERM).
    const dir = project();
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [BIN, 'serve', 'convex', '--port', '0'], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      onTestFinished(() => void child.kill('SIGKILL'));
      let output = '';
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        const first = !output.includes('Sleigh ready');
        output += chunk.toString();
        if (first && output.includes('Sleigh ready')) child.kill('SIGTERM');
      });
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
        child.on('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
      );
      expect({ code, signal }, output).toEqual({ code: 0, signal: null });
      expect(output).toContain('Shutting down');
    }
  });
});

describe('sleigh dev running careless code', () => {
  it('keeps serving when a function leaves a rejected promise unawaited, and says so', async () => {
    const dir = project();
    writeFileSync(
      join(dir, 'convex', 'careless.ts'),
      [
        "import { mutation } from './_generated/server';",
        'export const forget = mutation({',
        '  args: {},',
        '  handler: async () => {',
        "    Promise.reject(new Error('nobody awaits this'));",
        "    return 'ok';",
        '  },',
        '});',
        '',
      ].join('\n'),
    );
    const child = spawn(process.execPath, [BIN, 'dev', 'convex', '--port', '0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await expect
      .poll(() => /Sleigh ready at (\S+)/.exec(stdout), { timeout: 30_000 })
      .not.toBeNull();
    const client = new ConvexHttpClient(/Sleigh ready at (\S+)/.exec(stdout)![1]!);
    expect(await client.mutation(forget, {})).toBe('ok');
    await expect
      .poll(() => stderr, { timeout: 5000 })
      .toMatch(
        /sleigh: a promise was rejected and nothing handled it .*still serving\. Error: nobody awaits this/,
      );
    // Still up for everyone.
    expect(await client.query(logs, {})).toBeNull();
    expect(child.exitCode).toBeNull();
  });
});
