/**
 * Decoding the JSON that crosses the syscall boundary. `convex/server` encodes values with
 * `convexToJson`, and `undefined` (a missing field, in filters, ranges and patches) as
 * `{"$undefined": null}`, which `jsonToConvex` does not know.
 */
import { convexToJson, jsonToConvex, type JSONValue, type Value } from 'convex/values';

function isUndefinedMarker(json: JSONValue): boolean {
  return (
    typeof json === 'object' &&
    json !== null &&
    !Array.isArray(json) &&
    Object.keys(json).length === 1 &&
    '$undefined' in json
  );
}

export function decodeValueOrUndefined(json: JSONValue): Value | undefined {
  return isUndefinedMarker(json) ? undefined : jsonToConvex(json);
}

/** A patch: each top-level field is a value, or undefined meaning "remove this field". */
export function decodePatch(json: JSONValue): Record<string, Value | undefined> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new TypeError('A patch must be an object');
  }
  const out: Record<string, Value | undefined> = {};
  for (const [field, value] of Object.entries(json)) {
    out[field] = decodeValueOrUndefined(value);
  }
  return out;
}

export function encode(value: Value): JSONValue {
  return convexToJson(value);
}

export function decode(json: JSONValue): Value {
  return jsonToConvex(json);
}

/** A short rendering of a value for error messages. */
export function describeValue(value: Value | undefined): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'bigint':
      return `${value}n`;
    case 'string':
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
    case 'number':
    case 'boolean':
      return String(value);
    default:
      break;
  }
  if (value instanceof ArrayBuffer) return `bytes(${value.byteLength})`;
  let text: string;
  try {
    text = JSON.stringify(convexToJson(value));
  } catch {
    text = Array.isArray(value) ? 'an array' : 'an object';
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** Convex's name for the type of a value, as used in validator errors. */
export function typeName(value: Value | undefined): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'bigint':
      return 'int64';
    case 'number':
      return 'float64';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      break;
  }
  if (value instanceof ArrayBuffer) return 'bytes';
  if (Array.isArray(value)) return 'array';
  return 'object';
}
