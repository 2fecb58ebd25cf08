/**
 * The admin key: a secret that lets its holder call internal functions and admin operations.
 * One per data directory, generated on first start (file mode 0600), unless given by a flag or
 * the SLEIGH_ADMIN_KEY environment variable (how several servers of one deployment share it).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PREFIX = 'sleigh-admin-';

/** Shorter keys are guessable; generated keys have 56 characters. */
export const MIN_ADMIN_KEY_LENGTH = 16;

/**
 * Why a key cannot be an admin key, or null when it can. Keys travel in an HTTP header and are
 * compared after trimming, so only visible ASCII is allowed: a key of spaces or non-breaking
 * spaces would otherwise match an empty header.
 */
export function adminKeyProblem(key: string): string | null {
  if (key.length < MIN_ADMIN_KEY_LENGTH)
    return `it has ${key.length} characters; an admin key needs at least ${MIN_ADMIN_KEY_LENGTH}`;
  if (!/^[\x21-\x7e]+$/.test(key))
    return 'it may hold only visible ASCII characters (no spaces or control characters)';
  return null;
}

export function generateAdminKey(): string {
  return `${PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The data directory's admin key, created if there is none yet. */
export function loadOrCreateAdminKey(dataDir: string): string {
  const file = join(dataDir, 'admin_key');
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    // An empty file is a write that never finished: make a key. Anything else was put there.
    if (key !== '') {
      const problem = adminKeyProblem(key);
      if (problem !== null) throw new Error(`The admin key in ${file} is not usable: ${problem}`);
      return key;
    }
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
