import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject, onTestFinished } from 'vitest';

/** The PostgreSQL server of this test run (see global-setup.ts). */
export function databaseUrl(): string {
  return inject('databaseUrl');
}

/** A temporary folder removed when the current test passes (kept as evidence when it fails). */
export function tempDir(prefix = 'sleigh-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished((context) => {
    if (context.task.result?.state !== 'fail') rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
