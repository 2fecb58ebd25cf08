/**
 * How deep a function's arguments may nest. Decoding and validating values recurse, so JSON
 * nested thousands of levels deep would overflow the stack ("Maximum call stack size
 * exceeded", which says nothing of the cause); such arguments are refused first, by a walk
 * that does not recurse.
 */
export const MAX_ARGS_NESTING = 64;

/**
 * What one walk finds wrong with plain JSON arguments, or null:
 * - `too-deep`: arrays or objects more than `limit` levels inside;
 * - `not-finite`: a number JSON cannot carry. Text such as `1e400` parses to Infinity, which the
 *   validator would accept and the handler receive as null (JSON.stringify writes it so);
 *   Convex's encoding carries ±Infinity and NaN as `{"$float": …}` instead.
 */
export function argsProblem(value: unknown, limit: number): 'too-deep' | 'not-finite' | null {
  // Too deep wins: callers must know before anything recursive touches the value.
  let notFinite = false;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (typeof next.value === 'number') {
      if (!Number.isFinite(next.value)) notFinite = true;
      continue;
    }
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth > limit) return 'too-deep';
    const children = Array.isArray(next.value) ? next.value : Object.values(next.value);
    for (const child of children) stack.push({ value: child, depth: next.depth + 1 });
  }
  return notFinite ? 'not-finite' : null;
}

/** Whether `value` holds arrays or objects more than `limit` levels inside it. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  return argsProblem(value, limit) === 'too-deep';
}

/** The error for arguments nested too deeply, naming the function. */
export function tooDeepMessage(path: string): string {
  return `Invalid arguments for ${path}: they are nested more than ${MAX_ARGS_NESTING} levels deep`;
}
