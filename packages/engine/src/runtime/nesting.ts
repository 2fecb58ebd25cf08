/**
 * How deep a function's arguments may nest. Decoding and validating values recurse, so JSON
 * nested thousands of levels deep would overflow the stack ("Maximum call stack size
 * exceeded", which says nothing of the cause); such arguments are refused first, by a walk
 * that does not recurse.
 */
export const MAX_ARGS_NESTING = 64;

/** Whether `value` holds arrays or objects more than `limit` levels inside it. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue;
    if (next.depth > limit) return true;
    const children = Array.isArray(next.value) ? next.value : Object.values(next.value);
    for (const child of children) stack.push({ value: child, depth: next.depth + 1 });
  }
  return false;
}

/** The error for arguments nested too deeply, naming the function. */
export function tooDeepMessage(path: string): string {
  return `Invalid arguments for ${path}: they are nested more than ${MAX_ARGS_NESTING} levels deep`;
}

/**
 * Whether plain JSON arguments hold a number JSON cannot carry: text such as `1e400` parses to
 * Infinity, which the validator would accept and the handler receive as null (JSON.stringify
 * writes it so). Convex's encoding carries ±Infinity and NaN as `{"$float": …}` instead.
 */
export function holdsNonFinite(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const next = stack.pop();
    if (typeof next === 'number') {
      if (!Number.isFinite(next)) return true;
    } else if (typeof next === 'object' && next !== null) {
      for (const child of Array.isArray(next) ? next : Object.values(next)) stack.push(child);
    }
  }
  return false;
}
