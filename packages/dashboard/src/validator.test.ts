import { v, type ValidatorJSON } from 'convex/values';
import { describe as group, expect, it } from 'vitest';
import {
  argsOf,
  controlFor,
  describe,
  FieldError,
  initialDraft,
  templateFor,
  type Draft,
} from './validator';

/** A validator's JSON form (`.json` is internal to convex/values, so it is read by cast). */
const json = (validator: object) => (validator as { json: ValidatorJSON }).json;

const ARGS = json(
  v.object({
    label: v.string(),
    ms: v.number(),
    big: v.optional(v.int64()),
    on: v.boolean(),
    pool: v.union(v.literal('narrow'), v.literal('wide')),
    owner: v.optional(v.id('users')),
    tags: v.array(v.string()),
    retry: v.optional(v.object({ maxAttempts: v.number() })),
    extra: v.optional(v.any()),
  }),
);

function set(draft: Draft, values: Record<string, Draft>): Draft {
  if (draft.kind !== 'object') throw new Error('not an object draft');
  return { ...draft, fields: { ...draft.fields, ...values } };
}

group('validators as text', () => {
  it('reads like TypeScript', () => {
    expect(describe(json(v.object({ a: v.string(), b: v.optional(v.number()) })))).toBe(
      '{ a: string; b?: number }',
    );
    expect(describe(json(v.array(v.union(v.literal('x'), v.null()))))).toBe('Array<"x" | null>');
    expect(describe(json(v.record(v.string(), v.int64())))).toBe('Record<string, bigint>');
    expect(describe(json(v.id('messages')))).toBe('Id<"messages">');
    expect(describe(ARGS)).toContain('\n  retry?: { maxAttempts: number };');
  });
});

group('the args form', () => {
  it('picks a control per validator', () => {
    expect(controlFor(json(v.string()), false)).toEqual({ kind: 'text', input: 'text' });
    expect(controlFor(json(v.boolean()), false)).toEqual({ kind: 'checkbox' });
    expect(controlFor(json(v.boolean()), true).kind).toBe('select');
    expect(controlFor(json(v.union(v.literal(1), v.literal(2))), false).kind).toBe('select');
    expect(controlFor(json(v.union(v.string(), v.number())), false)).toEqual({ kind: 'json' });
    expect(controlFor(json(v.record(v.string(), v.number())), false)).toEqual({ kind: 'json' });
    expect(controlFor(json(v.literal('only')), false)).toEqual({ kind: 'fixed', value: 'only' });
  });

  it('turns a filled-in draft into arguments, leaving empty optional fields out', () => {
    const draft = set(initialDraft(ARGS, false), {
      label: { kind: 'text', text: 'hello' },
      ms: { kind: 'text', text: '2.5' },
      big: { kind: 'text', text: '9007199254740993' },
      on: { kind: 'checkbox', checked: true },
      pool: { kind: 'text', text: '1' },
      tags: { kind: 'text', text: '["a", "b"]' },
    });
    expect(argsOf(ARGS, draft)).toEqual({
      label: 'hello',
      ms: 2.5,
      big: 9007199254740993n,
      on: true,
      pool: 'wide',
      tags: ['a', 'b'],
    });
  });

  it('includes an optional object only when asked to', () => {
    const base = set(initialDraft(ARGS, false), {
      ms: { kind: 'text', text: '1' },
      tags: { kind: 'text', text: '[]' },
    });
    expect(argsOf(ARGS, base)).not.toHaveProperty('retry');
    const retry = initialDraft(json(v.object({ maxAttempts: v.number() })), true);
    if (retry.kind !== 'object') throw new Error('not an object draft');
    const included = set(base, {
      retry: { ...retry, include: true, fields: { maxAttempts: { kind: 'text', text: '3' } } },
    });
    expect(argsOf(ARGS, included).retry).toEqual({ maxAttempts: 3 });
  });

  it('names the field whose value is not valid', () => {
    const draft = set(initialDraft(ARGS, false), {
      ms: { kind: 'text', text: 'soon' },
      tags: { kind: 'text', text: '[]' },
    });
    expect(() => argsOf(ARGS, draft)).toThrow(FieldError);
    expect(() => argsOf(ARGS, draft)).toThrow('ms: not a number');
    const json = set(draft, { ms: { kind: 'text', text: '1' }, tags: { kind: 'text', text: '[' } });
    expect(() => argsOf(ARGS, json)).toThrow(/^tags: not valid JSON/);
  });

  it('reads JSON fields in Convex encoding (int64, bytes)', () => {
    const validator = json(v.object({ value: v.any() }));
    const draft = set(initialDraft(validator, false), {
      value: { kind: 'text', text: '{"n": {"$integer": "AQAAAAAAAAA="}}' },
    });
    expect(argsOf(validator, draft)).toEqual({ value: { n: 1n } });
  });
});

group('document templates', () => {
  it('hold the required fields of a table schema', () => {
    expect(
      templateFor(
        json(v.object({ name: v.string(), n: v.number(), note: v.optional(v.string()) })),
      ),
    ).toEqual({ name: '', n: 0 });
  });
});
