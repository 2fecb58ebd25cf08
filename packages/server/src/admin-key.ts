/**
 * The admin key: a secret that lets its holder call internal functions and admin operations.
 * One per data directory, generated on first start (file mode 0600), unless given by a flag or
 * the SLEIGH_ADMIN_KEY environment variable (how several servers of one deployment share it).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PREFIX = 'sleigh-admin-';

export function generateAdminKey(): string {
  return `${PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The data directory's admin key, created if there is none yet. */
export function loadOrCreateAdminKey(dataDir: string): string {
  const file = join(dataDir, 'admin_key');
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    if (key.length >= 16) return key;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = generateAdminKey();
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** Compares in constant time, so the key cannot be guessed byte by byte from timings. */
export function sameKey(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
