/**
 * Filter expressions (`.filter(q => q.and(q.eq(q.field("a"), 1), ...))`), compiled once into a
 * function of the document. Comparisons use Convex's total order over all values, so a missing
 * field (undefined) compares lower than everything, and values of different types compare by
 * type rank, exactly as index order does.
 */
import { fieldValue, type Document } from '@sleigh/storage';
import { compareValues, type JSONValue, type Value } from 'convex/values';
import { decodeValueOrUndefined, typeName } from './values.js';

type Evaluate = (document: Document) => Value | undefined;

const COMPARISONS = {
  $eq: (c: number) => c === 0,
  $neq: (c: number) => c !== 0,
  $lt: (c: number) => c < 0,
  $lte: (c: number) => c <= 0,
  $gt: (c: number) => c > 0,
  $gte: (c: number) => c >= 0,
} as const;

type Arithmetic = '$add' | '$sub' | '$mul' | '$div' | '$mod';

function arithmetic(op: Arithmetic, a: Value | undefined, b: Value | undefined): Value {
  if (typeof a === 'number' && typeof b === 'number') {
    switch (op) {
      case '$add':
        return a + b;
      case '$sub':
        return a - b;
      case '$mul':
        return a * b;
      case '$div':
        return a / b;
      case '$mod':
        return a % b;
    }
  }
  if (typeof a === 'bigint' && typeof b === 'bigint') {
    if ((op === '$div' || op === '$mod') && b === 0n) {
      throw new Error(`Filter ${op.slice(1)}: int64 division by zero`);
    }
    const wrap = (n: bigint) => BigInt.asIntN(64, n);
    switch (op) {
      case '$add':
        return wrap(a + b);
      case '$sub':
        return wrap(a - b);
      case '$mul':
        return wrap(a * b);
      case '$div':
        return wrap(a / b);
      case '$mod':
        return wrap(a % b);
    }
  }
  throw new Error(
    `Filter ${op.slice(1)} needs two float64 or two int64 values, got ${typeName(a)} and ${typeName(b)}`,
  );
}

function asBoolean(value: Value | undefined, operator: string): boolean {
  if (typeof value !== 'boolean') {
    throw new Error(`Filter ${operator} needs boolean operands, got ${typeName(value)}`);
  }
  return value;
}

function compileExpression(expression: JSONValue): Evaluate {
  if (typeof expression !== 'object' || expression === null || Array.isArray(expression)) {
    throw new Error(`Malformed filter expression: ${JSON.stringify(expression)}`);
  }
  const keys = Object.keys(expression);
  if (keys.length !== 1)
    throw new Error(`Malformed filter expression: ${JSON.stringify(expression)}`);
  const operator = keys[0]!;
  const operand = expression[operator]!;
  switch (operator) {
    case '$field': {
      if (typeof operand !== 'string') throw new Error('Malformed filter: $field needs a string');
      return (document) => fieldValue(document, operand);
    }
    case '$literal': {
      const value = decodeValueOrUndefined(operand);
      return () => value;
    }
    case '$eq':
    case '$neq':
    case '$lt':
    case '$lte':
    case '$gt':
    case '$gte': {
      const [left, right] = binary(operator, operand);
      const test = COMPARISONS[operator];
      return (document) => test(compareValues(left(document), right(document)));
    }
    case '$add':
    case '$sub':
    case '$mul':
    case '$div':
    case '$mod': {
      const [left, right] = binary(operator, operand);
      return (document) => arithmetic(operator, left(document), right(document));
    }
    case '$neg': {
      const inner = compileExpression(operand);
      return (document) => {
        const value = inner(document);
        if (typeof value === 'number') return -value;
        if (typeof value === 'bigint') return BigInt.asIntN(64, -value);
        throw new Error(`Filter neg needs a float64 or int64, got ${typeName(value)}`);
      };
    }
    case '$not': {
      const inner = compileExpression(operand);
      return (document) => !asBoolean(inner(document), 'not');
    }
    case '$and':
    case '$or': {
      if (!Array.isArray(operand)) throw new Error(`Malformed filter: ${operator} needs a list`);
      const parts = operand.map(compileExpression);
      const name = operator.slice(1);
      return operator === '$and'
        ? (document) => parts.every((part) => asBoolean(part(document), name))
        : (document) => parts.some((part) => asBoolean(part(document), name));
    }
    default:
      throw new Error(`Unknown filter operator ${operator}`);
  }
}

function binary(operator: string, operand: JSONValue): [Evaluate, Evaluate] {
  if (!Array.isArray(operand) || operand.length !== 2) {
    throw new Error(`Malformed filter: ${operator} needs two operands`);
  }
  return [compileExpression(operand[0]!), compileExpression(operand[1]!)];
}

/** A predicate on documents: true keeps the document. */
export function compileFilter(expression: JSONValue): (document: Document) => boolean {
  const evaluate = compileExpression(expression);
  return (document) => evaluate(document) === true;
}
