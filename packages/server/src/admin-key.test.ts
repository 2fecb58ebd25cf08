import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_APPS } from '@sleigh/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { adminKeyProblem, generateAdminKey, loadOrCreateAdminKey } from './admin-key.js';
import { SleighServer } from './server.js';
import { DRIVERS } from './test-server.js';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sleigh-admin-key-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('admin keys', () => {
  it('accepts generated keys and refuses short, blank or invisible ones', () => {
    expect(adminKeyProblem(generateAdminKey())).toBeNull();
    expect(adminKeyProblem('')).toMatch(/0 characters; an admin key needs at least 16/);
    expect(adminKeyProblem('short-key')).toMatch(/9 characters/);
    // Both would trim to '' in an Authorization header.
    expect(adminKeyProblem(' '.repeat(20))).toMatch(/only visible ASCII/);
    expect(adminKeyProblem('\u00a0'.repeat(20))).toMatch(/only visible ASCII/);
    expect(adminKeyProblem('a-good-key-but-with\ta-tab')).toMatch(/only visible ASCII/);
  });

  it('creates a key file once, reuses it, and refuses a file holding an unusable key', () => {
    const dir = tempDir();
    const key = loadOrCreateAdminKey(dir);
    expect(adminKeyProblem(key)).toBeNull();
    expect(loadOrCreateAdminKey(dir)).toBe(key);
    writeFileSync(join(dir, 'admin_key'), 'tiny\n');
    expect(() => loadOrCreateAdminKey(dir)).toThrow(/admin_key is not usable: it has 4 characters/);
    expect(readFileSync(join(dir, 'admin_key'), 'utf8')).toBe('tiny\n');
    // An empty file is a key that was never written: a new one is made.
    writeFileSync(join(dir, 'admin_key'), '');
    expect(adminKeyProblem(loadOrCreateAdminKey(dir))).toBeNull();
  });

  it('will not start a server with an unusable admin key', async () => {
    const store = await DRIVERS[0]!.open();
    onTestFinished(() => store.close());
    for (const adminKey of ['', '\u00a0', 'x'.repeat(15)]) {
      await expect(
        SleighServer.start({
          store,
          functionsDir: join(TEST_APPS, 'basic', 'convex'),
          adminKey,
          port: 0,
          codegen: false,
          log: () => undefined,
        }),
      ).rejects.toThrow(/The admin key is not usable/);
    }
  });
});
