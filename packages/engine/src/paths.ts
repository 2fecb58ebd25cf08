/**
 * Function paths. Convex names a function `dir/module:export`; `module` alone means its default
 * export, and clients may include the module's `.js` extension. The canonical form has neither
 * the extension nor an implied `default`.
 */

export interface FunctionPath {
  /** Module path inside the functions folder, without extension: `dir/module`. */
  readonly module: string;
  /** The export's name. */
  readonly name: string;
}

const MODULE = /^[A-Za-z0-9_\-./]+$/;

/** Parses `dir/module:name`, `dir/module.js:name` or `dir/module`; null when malformed. */
export function parseFunctionPath(path: string): FunctionPath | null {
  if (typeof path !== 'string' || path.length === 0 || path.length > 1024) return null;
  const colon = path.lastIndexOf(':');
  let module = colon === -1 ? path : path.slice(0, colon);
  const name = colon === -1 ? 'default' : path.slice(colon + 1);
  module = module.replace(/\.(js|ts|mjs|cjs|jsx|tsx)$/, '');
  if (!MODULE.test(module) || module.startsWith('/') || module.includes('..')) return null;
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name)) return null;
  return { module, name };
}

export function formatFunctionPath(path: FunctionPath): string {
  return `${path.module}:${path.name}`;
}

/** The canonical spelling of a path, or null when it is malformed. */
export function canonicalFunctionPath(path: string): string | null {
  const parsed = parseFunctionPath(path);
  return parsed === null ? null : formatFunctionPath(parsed);
}
