/**
 * Index ranges: the `withIndex(name, q => q.eq(...).gt(...).lt(...))` expressions, checked
 * against the index's fields and turned into a key interval `[start, end)`.
 *
 * A range is equalities on a prefix of the index's fields, then at most one lower bound and one
 * upper bound on the field that follows. Keys of compound values sort field by field, so
 *
 *   eq a, gte b  →  start = key(a, b)              eq a, lt b   →  end = key(a, b)
 *   eq a, gt b   →  start = prefixEnd(key(a, b))   eq a, lte b  →  end = prefixEnd(key(a, b))
 *   no bound     →  the whole prefix: [key(a), prefixEnd(key(a)))
 */
import { encodeKey, prefixEnd, type IndexInfo } from '@sleigh/storage';
import type { JSONValue, Value } from 'convex/values';
import { decodeValueOrUndefined } from './values.js';

export interface RangeExpression {
  readonly type: 'Eq' | 'Gt' | 'Gte' | 'Lt' | 'Lte';
  readonly fieldPath: string;
  readonly value: JSONValue;
}

export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
}

/** Throws an Error naming the index and the problem when the range does not fit the index. */
export function indexRange(index: IndexInfo, expressions: readonly RangeExpression[]): KeyRange {
  const label = `index "${index.table}.${index.name}"`;
  const fields = index.fields;
  const prefix: Array<Value | undefined> = [];
  let lower: { inclusive: boolean; value: Value | undefined } | null = null;
  let upper: { inclusive: boolean; value: Value | undefined } | null = null;
  let boundField: string | null = null;
  for (const expression of expressions) {
    const value = decodeValueOrUndefined(expression.value);
    if (expression.type === 'Eq') {
      if (boundField !== null) {
        throw new Error(
          `Invalid range on ${label}: eq("${expression.fieldPath}") comes after a bound on "${boundField}"; equalities must come first`,
        );
      }
      const expected = fields[prefix.length];
      if (expression.fieldPath !== expected) {
        throw new Error(
          `Invalid range on ${label}: eq("${expression.fieldPath}") where the next field of the index is ${expected === undefined ? 'none' : `"${expected}"`} (fields: ${fields.join(', ')})`,
        );
      }
      prefix.push(value);
      continue;
    }
    const expected = fields[prefix.length];
    if (expression.fieldPath !== expected || (boundField !== null && boundField !== expected)) {
      throw new Error(
        `Invalid range on ${label}: a bound on "${expression.fieldPath}" where the next field of the index is ${expected === undefined ? 'none' : `"${expected}"`}`,
      );
    }
    boundField = expected;
    const isLower = expression.type === 'Gt' || expression.type === 'Gte';
    const bound = { inclusive: expression.type === 'Gte' || expression.type === 'Lte', value };
    if (isLower) {
      if (lower !== null)
        throw new Error(`Invalid range on ${label}: two lower bounds on "${expected}"`);
      lower = bound;
    } else {
      if (upper !== null)
        throw new Error(`Invalid range on ${label}: two upper bounds on "${expected}"`);
      upper = bound;
    }
  }
  const prefixKey = encodeKey(prefix);
  const start =
    lower === null
      ? prefixKey
      : lower.inclusive
        ? encodeKey([...prefix, lower.value])
        : prefixEnd(encodeKey([...prefix, lower.value]));
  const end =
    upper === null
      ? prefixEnd(prefixKey)
      : upper.inclusive
        ? prefixEnd(encodeKey([...prefix, upper.value]))
        : encodeKey([...prefix, upper.value]);
  return { start, end };
}
