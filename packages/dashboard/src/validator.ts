/**
 * Convex validators (their JSON form, `ValidatorJSON`) read by the dashboard: shown as
 * TypeScript-like text, and turned into a form whose drafts become a function's arguments.
 */
import { jsonToConvex, type JSONValue, type Value, type ValidatorJSON } from 'convex/values';

type FieldType = { fieldType: ValidatorJSON; optional: boolean };

function literalText(value: JSONValue): string {
  return JSON.stringify(value);
}

/** A validator as TypeScript-like text: `{ label: string; ms?: number }`. */
export function describe(v: ValidatorJSON | null | undefined, indent = ''): string {
  if (v === null || v === undefined) return 'unknown';
  switch (v.type) {
    case 'null':
    case 'boolean':
    case 'string':
    case 'any':
      return v.type;
    case 'number':
      return 'number';
    case 'bigint':
      return 'bigint';
    case 'bytes':
      return 'ArrayBuffer';
    case 'commitTs':
      return 'commitTs';
    case 'literal':
      return literalText(v.value);
    case 'id':
      return `Id<${JSON.stringify(v.tableName)}>`;
    case 'array': {
      const inner = describe(v.value, indent);
      return v.value.type === 'union' ? `Array<${inner}>` : `${inner}[]`;
    }
    case 'record':
      return `Record<${describe(v.keys, indent)}, ${describe(v.values.fieldType, indent)}>`;
    case 'union':
      return v.value.map((member) => describe(member, indent)).join(' | ');
    case 'object': {
      const entries = Object.entries(v.value as Record<string, FieldType>);
      if (entries.length === 0) return '{}';
      const inner = `${indent}  `;
      const parts = entries.map(
        ([name, field]) =>
          `${name}${field.optional ? '?' : ''}: ${describe(field.fieldType, inner)}`,
      );
      const oneLine = `{ ${parts.join('; ')} }`;
      if (oneLine.length <= 72 && !oneLine.includes('\n')) return oneLine;
      return `{\n${parts.map((part) => `${inner}${part};`).join('\n')}\n${indent}}`;
    }
    default:
      return 'unknown';
  }
}

/** What a form shows for a validator. */
export type Control =
  | { kind: 'text'; input: 'text' | 'number' | 'integer' | 'id' }
  | { kind: 'checkbox' }
  | { kind: 'select'; options: Array<{ label: string; value: Value }> }
  | { kind: 'fixed'; value: Value }
  | { kind: 'object'; fields: Array<{ name: string; field: FieldType }> }
  | { kind: 'json' };

function literalOptions(v: ValidatorJSON): Array<{ label: string; value: Value }> | null {
  const members = v.type === 'union' ? v.value : [v];
  const options: Array<{ label: string; value: Value }> = [];
  for (const member of members) {
    if (member.type === 'literal') {
      options.push({ label: literalText(member.value), value: jsonToConvex(member.value) });
    } else if (member.type === 'null') {
      options.push({ label: 'null', value: null });
    } else {
      return null;
    }
  }
  return options;
}

export function controlFor(v: ValidatorJSON, optional: boolean): Control {
  switch (v.type) {
    case 'string':
      return { kind: 'text', input: 'text' };
    case 'id':
      return { kind: 'text', input: 'id' };
    case 'number':
      return { kind: 'text', input: 'number' };
    case 'bigint':
      return { kind: 'text', input: 'integer' };
    case 'boolean':
      return optional
        ? {
            kind: 'select',
            options: [
              { label: 'true', value: true },
              { label: 'false', value: false },
            ],
          }
        : { kind: 'checkbox' };
    case 'null':
    case 'literal': {
      const value = v.type === 'null' ? null : jsonToConvex(v.value);
      return optional
        ? { kind: 'select', options: literalOptions(v) ?? [] }
        : { kind: 'fixed', value };
    }
    case 'union': {
      const options = literalOptions(v);
      return options !== null ? { kind: 'select', options } : { kind: 'json' };
    }
    case 'object':
      return {
        kind: 'object',
        fields: Object.entries(v.value as Record<string, FieldType>).map(([name, field]) => ({
          name,
          field,
        })),
      };
    default:
      return { kind: 'json' };
  }
}

/** What a person has typed or picked for one field. */
export type Draft =
  | { kind: 'text'; text: string }
  | { kind: 'checkbox'; checked: boolean }
  | { kind: 'object'; include: boolean; fields: Record<string, Draft> }
  | { kind: 'none' };

export function initialDraft(v: ValidatorJSON, optional: boolean): Draft {
  const control = controlFor(v, optional);
  switch (control.kind) {
    case 'text':
      return { kind: 'text', text: '' };
    case 'checkbox':
      return { kind: 'checkbox', checked: false };
    case 'select':
      return { kind: 'text', text: optional ? '' : '0' };
    case 'fixed':
      return { kind: 'none' };
    case 'object': {
      const fields: Record<string, Draft> = {};
      for (const { name, field } of control.fields) {
        fields[name] = initialDraft(field.fieldType, field.optional);
      }
      return { kind: 'object', include: !optional, fields };
    }
    case 'json':
      return {
        kind: 'text',
        text: optional ? '' : v.type === 'array' ? '[]' : v.type === 'record' ? '{}' : '',
      };
  }
}

export class FieldError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path === '' ? 'Arguments' : path}: ${message}`);
  }
}

/** Parses JSON text (Convex's JSON encoding) into a Convex value. */
export function parseJsonValue(text: string): Value {
  return jsonToConvex(JSON.parse(text) as JSONValue);
}

const OMIT = Symbol('omit');

/**
 * Turns a field's draft into its value, or `OMIT` for an optional field left empty. Throws
 * `FieldError` naming the field whose draft is not a valid value.
 */
function valueOf(
  v: ValidatorJSON,
  optional: boolean,
  draft: Draft,
  path: string,
): Value | typeof OMIT {
  const control = controlFor(v, optional);
  const text = draft.kind === 'text' ? draft.text : '';
  switch (control.kind) {
    case 'fixed':
      return control.value;
    case 'checkbox':
      return draft.kind === 'checkbox' ? draft.checked : false;
    case 'select': {
      if (text === '') {
        if (optional) return OMIT;
        throw new FieldError(path, 'pick a value');
      }
      const option = control.options[Number(text)];
      if (option === undefined) throw new FieldError(path, 'pick a value');
      return option.value;
    }
    case 'text': {
      if (text.trim() === '' && (optional || control.input !== 'text')) {
        if (optional) return OMIT;
        throw new FieldError(path, 'required');
      }
      if (control.input === 'number') {
        const number = Number(text);
        if (Number.isNaN(number) && text.trim() !== 'NaN')
          throw new FieldError(path, 'not a number');
        return number;
      }
      if (control.input === 'integer') {
        try {
          return BigInt(text.trim());
        } catch {
          throw new FieldError(path, 'not an integer');
        }
      }
      return text;
    }
    case 'object': {
      if (draft.kind !== 'object') throw new FieldError(path, 'not an object');
      if (!draft.include) {
        if (optional) return OMIT;
      }
      const out: Record<string, Value> = {};
      for (const { name, field } of control.fields) {
        const inner = draft.fields[name] ?? initialDraft(field.fieldType, field.optional);
        const value = valueOf(
          field.fieldType,
          field.optional,
          inner,
          path === '' ? name : `${path}.${name}`,
        );
        if (value !== OMIT) out[name] = value;
      }
      return out;
    }
    case 'json': {
      if (text.trim() === '') {
        if (optional) return OMIT;
        throw new FieldError(path, 'required (JSON)');
      }
      try {
        return parseJsonValue(text);
      } catch (error) {
        throw new FieldError(
          path,
          `not valid JSON (${error instanceof Error ? error.message : String(error)})`,
        );
      }
    }
  }
}

/** A function's arguments from the form's draft (the args validator is an object, or `any`). */
export function argsOf(v: ValidatorJSON, draft: Draft): Record<string, Value> {
  const value = valueOf(v, false, draft, '');
  if (value === OMIT || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FieldError('', 'must be an object');
  }
  return value as Record<string, Value>;
}

/** A starting value for a validator (an object's required fields only), for editors. */
export function templateFor(v: ValidatorJSON | null | undefined): Value {
  if (v === null || v === undefined) return {};
  switch (v.type) {
    case 'string':
    case 'id':
      return '';
    case 'number':
      return 0;
    case 'bigint':
      return 0n;
    case 'boolean':
      return false;
    case 'literal':
      return jsonToConvex(v.value);
    case 'array':
      return [];
    case 'record':
      return {};
    case 'bytes':
      return new ArrayBuffer(0);
    case 'union':
      return v.value[0] === undefined ? null : templateFor(v.value[0]);
    case 'object': {
      const out: Record<string, Value> = {};
      for (const [name, field] of Object.entries(v.value as Record<string, FieldType>)) {
        if (!field.optional) out[name] = templateFor(field.fieldType);
      }
      return out;
    }
    default:
      return null;
  }
}
