/**
 * Queries and mutations are deterministic, as Convex makes them: inside one, `Math.random` is
 * seeded, `Date.now()` and `new Date()` are fixed at the start of the run, and `fetch` and timers
 * are refused with a clear error (they belong in actions). Outside them (actions, and Sleigh's
 * own code) every global behaves normally: each patched global asks the execution context.
 *
 * Sleigh runs its own work for a syscall outside the user's context (`executions.exit`), so a
 * timer that a database driver sets never trips these guards.
 */
import { inDeterministicFunction } from './context.js';

let installed = false;

function refuse(what: string, kind: string, path: string): never {
  throw new Error(
    `${what} is not allowed in a ${kind} (${path}): queries and mutations must be deterministic. Move it to an action.`,
  );
}

export function installDeterminism(): void {
  if (installed) return;
  installed = true;
  const g = globalThis as Record<string, unknown>;

  const realRandom = Math.random;
  Math.random = () => {
    const execution = inDeterministicFunction();
    return execution === undefined ? realRandom() : execution.random();
  };

  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  RealDate.now = () => inDeterministicFunction()?.now ?? realNow();
  g.Date = new Proxy(RealDate, {
    construct(target, args: unknown[], newTarget) {
      if (args.length === 0) {
        const execution = inDeterministicFunction();
        if (execution !== undefined)
          return Reflect.construct(target, [execution.now], newTarget) as object;
      }
      return Reflect.construct(target, args, newTarget) as object;
    },
  });

  for (const name of ['setTimeout', 'setInterval', 'setImmediate']) {
    const real = g[name] as (...args: unknown[]) => unknown;
    const guarded = function (this: unknown, ...args: unknown[]) {
      const execution = inDeterministicFunction();
      if (execution !== undefined) refuse(name, execution.kind, execution.path);
      return real.apply(this, args);
    };
    Object.assign(guarded, real);
    g[name] = guarded;
  }

  const realFetch = g.fetch as ((...args: unknown[]) => unknown) | undefined;
  if (realFetch !== undefined) {
    g.fetch = function (this: unknown, ...args: unknown[]) {
      const execution = inDeterministicFunction();
      if (execution !== undefined) refuse('fetch()', execution.kind, execution.path);
      return realFetch.apply(this, args);
    };
  }
}
