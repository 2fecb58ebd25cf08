/**
 * Document ids.
 *
 * An id is a 31-37 character string (31 for the first 127 tables) in base32 (digits and lower-case letters without i, l, o, u)
 * of these bytes:
 *
 *   varint(table number) ++ 6-byte creation milliseconds ++ 10 random bytes ++ 2-byte checksum
 *
 * The table number lets `db.get(id)` and `db.normalizeId(table, id)` find the table from the id
 * alone, as Convex ids do. The millisecond prefix keeps a table's ids roughly in creation order, so
 * inserts append to the end of the primary-key b-tree instead of splitting pages at random. Ten
 * random bytes (80 bits) per millisecond make collisions negligible; the checksum (Fletcher-16)
 * turns typos and ids from other systems into a clean "not an id" rather than a lookup miss.
 */
import { createHash, randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

const RANDOM_BYTES = 10;
const MAX_TABLE_NUMBER = 0x7fffffff;

// Random bytes come from a pool refilled in bulk: one syscall per 512 ids rather than per id.
const pool = Buffer.alloc(RANDOM_BYTES * 512);
let poolOffset = pool.length;

function fletcher16(bytes: Uint8Array, length: number): number {
  let a = 0;
  let b = 0;
  for (let i = 0; i < length; i++) {
    a = (a + bytes[i]!) % 255;
    b = (b + a) % 255;
  }
  return (b << 8) | a;
}

function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

function unbase32(text: string): Uint8Array | null {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? DECODE[code]! : -1;
    if (digit < 0) return null;
    buffer = (buffer << 5) | digit;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (buffer >>> bits) & 0xff;
      buffer &= (1 << bits) - 1;
    }
  }
  // Leftover bits must be zero padding shorter than one digit, so every id has one spelling.
  if (buffer !== 0 || Math.ceil((out.length * 8) / 5) !== text.length) return null;
  return out;
}

/** A new id for a document in the table with this number. */
export function newDocumentId(tableNumber: number, nowMs: number = Date.now()): string {
  return makeId(tableNumber, nowMs, null);
}

/**
 * The one id a document of this table gets for `name`: a hash in place of the random bytes (and
 * no time). Two transactions inserting for the same name collide on the primary key, which is
 * how the database itself enforces "one per name" (unique jobs).
 */
export function derivedDocumentId(tableNumber: number, name: string): string {
  return makeId(tableNumber, 0, createHash('sha256').update(name).digest());
}

function makeId(tableNumber: number, nowMs: number, hash: Uint8Array | null): string {
  if (!Number.isInteger(tableNumber) || tableNumber < 1 || tableNumber > MAX_TABLE_NUMBER) {
    throw new RangeError(`Table number ${tableNumber} is out of range`);
  }
  const bytes = new Uint8Array(5 + 6 + RANDOM_BYTES + 2);
  let at = 0;
  let n = tableNumber;
  while (n >= 0x80) {
    bytes[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  bytes[at++] = n;
  const ms = Math.max(0, Math.floor(nowMs));
  for (let shift = 5; shift >= 0; shift--) {
    bytes[at++] = Math.floor(ms / 2 ** (8 * shift)) & 0xff;
  }
  if (hash !== null) {
    bytes.set(hash.subarray(0, RANDOM_BYTES), at);
  } else {
    if (poolOffset + RANDOM_BYTES > pool.length) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    bytes.set(pool.subarray(poolOffset, poolOffset + RANDOM_BYTES), at);
    poolOffset += RANDOM_BYTES;
  }
  at += RANDOM_BYTES;
  const sum = fletcher16(bytes, at);
  bytes[at++] = sum >>> 8;
  bytes[at++] = sum & 0xff;
  return base32(bytes.subarray(0, at));
}

/** The table number an id belongs to, or null when the string is not a well-formed id. */
export function tableNumberOfId(id: string): number | null {
  if (typeof id !== 'string' || id.length < 31 || id.length > 37) return null;
  const bytes = unbase32(id);
  if (bytes === null) return null;
  const payload = bytes.length - 2;
  if (payload < 1 + 6 + RANDOM_BYTES) return null;
  const sum = fletcher16(bytes, payload);
  if (bytes[payload] !== sum >>> 8 || bytes[payload + 1] !== (sum & 0xff)) return null;
  let tableNumber = 0;
  let shift = 0;
  let at = 0;
  for (;;) {
    const byte = bytes[at++]!;
    tableNumber += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) break;
    if (shift > 28) return null;
  }
  if (payload - at !== 6 + RANDOM_BYTES) return null;
  if (tableNumber < 1 || tableNumber > MAX_TABLE_NUMBER) return null;
  return tableNumber;
}
