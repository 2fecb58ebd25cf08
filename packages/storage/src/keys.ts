/**
 * Order-preserving byte encoding of Convex values (index keys).
 *
 * For any two values a and b, `compareBytes(encodeValue(a), encodeValue(b))` has the sign of
 * `compareValues(a, b)` from `convex/values`: the total order of PROTOCOL.md section 4,
 *
 *   undefined < null < int64 < float64 < boolean < string < bytes < array < object.
 *
 * Every encoded value starts with a type tag, so a key made of several values (a compound index
 * key) sorts field by field. Tags are all below 0xff, so `prefix ++ 0xff` is greater than every
 * key that extends a complete prefix: that is how range bounds are formed.
 *
 *   tag  value      body
 *   01   undefined  (none; a missing field)
 *   02   null       (none)
 *   03   int64      8 bytes big-endian, sign bit flipped
 *   04   float64    8 bytes big-endian IEEE 754, sign bit flipped (positive) or all bits flipped
 *                   (negative): the IEEE total order, so -NaN < -Inf < -0 < 0 < Inf < NaN
 *   05   false      (none)
 *   06   true       (none)
 *   07   string     UTF-8, 00 escaped as 00 ff, terminated by 00 00
 *   08   bytes      raw bytes, 00 escaped as 00 ff, terminated by 00 00
 *   09   array      each element encoded, then 00
 *   0a   object     fields sorted by UTF-8 name: name (escaped, 00 00), value; then 00
 */
import type { Value } from 'convex/values';
import { StorageError, StorageErrorCode } from './errors.js';

/** Whether `s` is valid Unicode: no lone surrogate (String.prototype.isWellFormed, Node 20). */
export function isWellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

const TAG_UNDEFINED = 0x01;
const TAG_NULL = 0x02;
const TAG_INT64 = 0x03;
const TAG_FLOAT64 = 0x04;
const TAG_FALSE = 0x05;
const TAG_TRUE = 0x06;
const TAG_STRING = 0x07;
const TAG_BYTES = 0x08;
const TAG_ARRAY = 0x09;
const TAG_OBJECT = 0x0a;
const END = 0x00;

/** A byte greater than every tag: `prefix ++ KEY_MAX_BYTE` bounds all extensions of `prefix`. */
export const KEY_MAX_BYTE = 0xff;

const utf8 = new TextEncoder();

/** A growable byte buffer, reused across encodings to keep allocation off the hot path. */
class KeyWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  reset(): void {
    this.length = 0;
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.reserve(1);
    this.buffer[this.length++] = b;
  }

  float64(n: number): void {
    this.reserve(8);
    const at = this.length;
    this.view.setFloat64(at, n, false);
    const buf = this.buffer;
    if ((buf[at]! & 0x80) !== 0) {
      for (let i = at; i < at + 8; i++) buf[i] = ~buf[i]! & 0xff;
    } else {
      buf[at] = buf[at]! ^ 0x80;
    }
    this.length += 8;
  }

  int64(n: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, n) ^ 0x8000000000000000n, false);
    this.length += 8;
  }

  /** Bytes with 00 escaped as 00 ff, then the 00 00 terminator. */
  escaped(bytes: Uint8Array): void {
    this.reserve(bytes.length * 2 + 2);
    const buf = this.buffer;
    let at = this.length;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      buf[at++] = b;
      if (b === 0) buf[at++] = 0xff;
    }
    buf[at++] = 0;
    buf[at++] = 0;
    this.length = at;
  }

  string(s: string): void {
    // Fast path for ASCII without NUL, the overwhelmingly common case (ids, names).
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0 || c > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      // TextEncoder turns a lone surrogate into U+FFFD: "\ud800", "\udfff" and "\ufffd" would
      // share one key, and a lookup of one would find the others' documents.
      if (!isWellFormed(s)) {
        throw new StorageError(
          StorageErrorCode.InvalidValue,
          `A string holding a lone surrogate is not valid Unicode, so it cannot be stored or looked up: ${JSON.stringify(s.slice(0, 40))}`,
        );
      }
      this.escaped(utf8.encode(s));
      return;
    }
    this.reserve(s.length + 2);
    const buf = this.buffer;
    let at = this.length;
    for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
    buf[at++] = 0;
    buf[at++] = 0;
    this.length = at;
  }

  value(v: Value | undefined): void {
    if (v === undefined) return this.byte(TAG_UNDEFINED);
    if (v === null) return this.byte(TAG_NULL);
    switch (typeof v) {
      case 'bigint':
        this.byte(TAG_INT64);
        return this.int64(v);
      case 'number':
        this.byte(TAG_FLOAT64);
        return this.float64(v);
      case 'boolean':
        return this.byte(v ? TAG_TRUE : TAG_FALSE);
      case 'string':
        this.byte(TAG_STRING);
        return this.string(v);
      default:
        break;
    }
    if (v instanceof ArrayBuffer) {
      this.byte(TAG_BYTES);
      return this.escaped(new Uint8Array(v));
    }
    if (Array.isArray(v)) {
      this.byte(TAG_ARRAY);
      for (const element of v) this.value(element);
      return this.byte(END);
    }
    if (typeof v === 'object') {
      this.byte(TAG_OBJECT);
      const fields = Object.entries(v as Record<string, Value | undefined>)
        .filter(([, fieldValue]) => fieldValue !== undefined)
        .map(([name, fieldValue]) => [utf8.encode(name), fieldValue] as const)
        .sort((a, b) => compareBytes(a[0], b[0]));
      for (const [name, fieldValue] of fields) {
        this.escaped(name);
        this.value(fieldValue);
      }
      return this.byte(END);
    }
    throw new TypeError(`Not a Convex value: ${typeof v}`);
  }

  /**
   * A copy of the key. A Buffer (a Uint8Array) from Node's pool costs a fifth of a fresh
   * Uint8Array's own ArrayBuffer, and the drivers pass it to the database as it is.
   */
  take(): Uint8Array {
    const key = Buffer.allocUnsafe(this.length);
    key.set(this.buffer.subarray(0, this.length));
    return key;
  }
}

const writer = new KeyWriter();

/** The order-preserving encoding of one value. */
export function encodeValue(value: Value | undefined): Uint8Array {
  writer.reset();
  writer.value(value);
  return writer.take();
}

/** The order-preserving encoding of a sequence of values (a compound key or key prefix). */
export function encodeKey(values: ReadonlyArray<Value | undefined>): Uint8Array {
  writer.reset();
  for (const value of values) writer.value(value);
  return writer.take();
}

/** Unsigned lexicographic comparison: the order every index uses. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** The smallest key strictly greater than `key`: resume an ascending scan after `key`. */
export function keySuccessor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** A bound greater than every key that starts with the complete encoded values in `prefix`. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = new Uint8Array(prefix.length + 1);
  end.set(prefix);
  end[prefix.length] = KEY_MAX_BYTE;
  return end;
}

/** Whether `key` starts with the bytes of `prefix` (a commit's write within a range, say). */
export function hasPrefix(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

/** Lower-case hex, for error messages and logs. */
export function keyToHex(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
}
