/**
 * The functions of a loaded folder: every exported query, mutation and action, public and
 * internal, by canonical path (`dir/module:name`), with its validators.
 */
import type { ValidatorJSON } from 'convex/values';
import { FunctionError, FunctionErrorCode } from '../errors.js';
import { formatFunctionPath, parseFunctionPath } from '../paths.js';
import type { Caller, FunctionKind } from '../runtime/context.js';

/** The shape `convex/server`'s builders give a registered function. */
export interface ConvexFunction {
  isQuery?: boolean;
  isMutation?: boolean;
  isAction?: boolean;
  isPublic?: boolean;
  isInternal?: boolean;
  invokeQuery?: (args: string) => Promise<string>;
  invokeMutation?: (args: string) => Promise<string>;
  invokeAction?: (requestId: string, args: string) => Promise<string>;
  exportArgs?: () => string;
  exportReturns?: () => string;
}

export interface FunctionInfo {
  readonly path: string;
  readonly module: string;
  readonly name: string;
  readonly kind: FunctionKind;
  readonly visibility: 'public' | 'internal';
  readonly args: ValidatorJSON;
  readonly returns: ValidatorJSON | null;
  readonly fn: ConvexFunction;
}

function kindOf(value: ConvexFunction): FunctionKind | null {
  if (value.isQuery === true) return 'query';
  if (value.isMutation === true) return 'mutation';
  if (value.isAction === true) return 'action';
  return null;
}

/** "a query", "a mutation", "an action". */
export function aKind(kind: FunctionKind): string {
  return `${kind === 'action' ? 'an' : 'a'} ${kind}`;
}

export class Registry {
  private readonly byPath = new Map<string, FunctionInfo>();

  constructor(modules: Map<string, Record<string, unknown>>) {
    for (const [module, exports] of modules) {
      for (const [name, value] of Object.entries(exports)) {
        if ((typeof value !== 'function' && typeof value !== 'object') || value === null) continue;
        const fn = value as ConvexFunction;
        const kind = kindOf(fn);
        if (kind === null) continue;
        const path = formatFunctionPath({ module, name });
        this.byPath.set(path, {
          path,
          module,
          name,
          kind,
          visibility: fn.isPublic === true ? 'public' : 'internal',
          args: JSON.parse(fn.exportArgs?.() ?? '{"type":"any"}') as ValidatorJSON,
          returns: JSON.parse(fn.exportReturns?.() ?? 'null') as ValidatorJSON | null,
          fn,
        });
      }
    }
  }

  all(): FunctionInfo[] {
    return [...this.byPath.values()];
  }

  /**
   * The function at `path` for a caller. Clients see only public functions: an internal one
   * is reported as missing, exactly like a function that does not exist.
   */
  lookup(path: string, kind: FunctionKind | null, caller: Caller): FunctionInfo {
    // Paths Sleigh stores (jobs, scheduled functions) are canonical already: no parsing.
    let info = this.byPath.get(path);
    let valid = true;
    if (info === undefined) {
      const parsed = parseFunctionPath(path);
      valid = parsed !== null;
      if (parsed !== null) info = this.byPath.get(formatFunctionPath(parsed));
    }
    const label = `${caller === 'client' ? 'public ' : ''}${kind ?? 'function'}`;
    if (info === undefined || (info.visibility === 'internal' && caller === 'client')) {
      throw new FunctionError(
        FunctionErrorCode.NotFound,
        `Could not find ${label} "${String(path).slice(0, 200)}"${valid ? '' : ' (not a valid function path; expected "module:function")'}`,
      );
    }
    if (kind !== null && info.kind !== kind) {
      throw new FunctionError(
        FunctionErrorCode.NotFound,
        `"${info.path}" is ${aKind(info.kind)}, not ${aKind(kind)}`,
      );
    }
    return info;
  }
}
