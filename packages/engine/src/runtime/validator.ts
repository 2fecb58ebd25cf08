/**
 * Checking values against `v` validators, in the JSON form the `convex` package exports
 * (`exportArgs()`, `exportReturns()`, a schema's `documentType`). The checker returns the first
 * mismatch with the path where it was found, so errors can say "`args.user.age`: expected
 * float64, got string".
 */
import { compareValues, jsonToConvex, type Value, type ValidatorJSON } from 'convex/values';
import { describeValue, typeName } from './values.js';

export interface Mismatch {
  /** Where in the value: `.field`, `[3]`, empty for the value itself. */
  readonly path: string;
  readonly message: string;
}

/** Tells whether a string is an id of a given table (the validator `v.id(table)`). */
export type IdChecker = (id: string, table: string) => boolean;

function describeValidator(validator: ValidatorJSON): string {
  switch (validator.type) {
    case 'null':
    case 'boolean':
    case 'string':
    case 'bytes':
    case 'any':
      return validator.type;
    case 'number':
      return 'float64 (number)';
    case 'bigint':
      return 'int64 (bigint)';
    case 'commitTs':
      return 'commit timestamp';
    case 'literal':
      return `the literal ${describeValue(jsonToConvex(validator.value))}`;
    case 'id':
      return `an id of table "${validator.tableName}"`;
    case 'array':
      return 'an array';
    case 'record':
      return 'a record (object)';
    case 'object':
      return 'an object';
    case 'union':
      return validator.value.map(describeValidator).join(' | ');
  }
}

function isPlainObject(value: Value): value is Record<string, Value> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof ArrayBuffer)
  );
}

/**
 * Returns null when `value` matches `validator`, otherwise the first mismatch.
 * `systemFields` lets a top-level object carry `_id` and `_creationTime` (documents).
 */
export function checkValue(
  validator: ValidatorJSON,
  value: Value | undefined,
  isId: IdChecker,
  options: { systemFields?: boolean } = {},
  path = '',
): Mismatch | null {
  const fail = (message?: string): Mismatch => ({
    path,
    message:
      message ??
      `expected ${describeValidator(validator)}, got ${typeName(value)} ${describeValue(value)}`,
  });
  if (value === undefined) return fail();
  switch (validator.type) {
    case 'any':
      return null;
    case 'null':
      return value === null ? null : fail();
    case 'number':
      return typeof value === 'number' ? null : fail();
    case 'bigint':
    case 'commitTs':
      return typeof value === 'bigint' ? null : fail();
    case 'boolean':
      return typeof value === 'boolean' ? null : fail();
    case 'string':
      return typeof value === 'string' ? null : fail();
    case 'bytes':
      return value instanceof ArrayBuffer ? null : fail();
    case 'literal':
      return compareValues(jsonToConvex(validator.value), value) === 0 ? null : fail();
    case 'id':
      if (typeof value !== 'string') return fail();
      return isId(value, validator.tableName)
        ? null
        : fail(`expected an id of table "${validator.tableName}", got ${describeValue(value)}`);
    case 'array': {
      if (!Array.isArray(value)) return fail();
      for (let i = 0; i < value.length; i++) {
        const mismatch = checkValue(validator.value, value[i], isId, {}, `${path}[${i}]`);
        if (mismatch !== null) return mismatch;
      }
      return null;
    }
    case 'record': {
      if (!isPlainObject(value)) return fail();
      for (const [key, item] of Object.entries(value)) {
        if (item === undefined) continue;
        const keyMismatch = checkValue(validator.keys, key, isId, {}, `${path}.${key}`);
        if (keyMismatch !== null) {
          return { path: `${path}.${key}`, message: `record key ${keyMismatch.message}` };
        }
        const mismatch = checkValue(validator.values.fieldType, item, isId, {}, `${path}.${key}`);
        if (mismatch !== null) return mismatch;
      }
      return null;
    }
    case 'object': {
      if (!isPlainObject(value)) return fail();
      for (const [field, { fieldType, optional }] of Object.entries(validator.value)) {
        const item = value[field];
        if (item === undefined) {
          if (optional) continue;
          return { path: `${path}.${field}`, message: `the required field "${field}" is missing` };
        }
        const mismatch = checkValue(fieldType, item, isId, {}, `${path}.${field}`);
        if (mismatch !== null) return mismatch;
      }
      for (const field of Object.keys(value)) {
        if (value[field] === undefined || field in validator.value) continue;
        if (options.systemFields && (field === '_id' || field === '_creationTime')) continue;
        return {
          path: `${path}.${field}`,
          message: `the field "${field}" is not in the validator (${Object.keys(validator.value)
            .map((f) => `"${f}"`)
            .join(', ')})`,
        };
      }
      return null;
    }
    case 'union': {
      let closest: Mismatch | null = null;
      for (const member of validator.value) {
        const mismatch = checkValue(member, value, isId, options, path);
        if (mismatch === null) return null;
        // Prefer a mismatch found deeper inside a member of the right shape.
        if (closest === null || mismatch.path.length > closest.path.length) closest = mismatch;
      }
      if (closest !== null && closest.path.length > path.length) return closest;
      return fail();
    }
  }
}
