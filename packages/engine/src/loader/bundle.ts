/**
 * Building a functions folder: esbuild bundles every module (and schema.ts) to ESM in a build
 * folder inside the project, and Node imports the result. Packages stay external, so app code
 * uses the project's own node_modules, `convex` included. Each build gets a folder of its own, so
 * a reload imports fresh modules while the previous ones finish their work.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

/** Files Convex treats as function modules (see the `convex` CLI's entry point rules). */
const EXTENSIONS = ['.ts', '.tsx', '.js', '.jsx', '.mjs', '.cjs', '.mts', '.cts'];

export class LoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoadError';
  }
}

export interface ModuleFile {
  /** Path inside the functions folder without extension, with forward slashes: `dir/module`. */
  readonly module: string;
  readonly file: string;
}

/** The function modules of a folder, following Convex's rules for what is not one. */
export function listModules(functionsDir: string): {
  modules: ModuleFile[];
  schema: string | null;
  crons: string | null;
} {
  if (!existsSync(functionsDir) || !statSync(functionsDir).isDirectory()) {
    throw new LoadError(`Functions folder ${functionsDir} does not exist or is not a folder`);
  }
  const modules: ModuleFile[] = [];
  let schema: string | null = null;
  let crons: string | null = null;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      const rel = relative(functionsDir, full).split(sep).join('/');
      if (entry.isDirectory()) {
        if (rel === '_generated' || rel === 'node_modules' || entry.name.startsWith('.')) continue;
        if (existsSync(join(full, 'convex.config.ts'))) continue;
        walk(full);
        continue;
      }
      const extension = EXTENSIONS.find((ext) => entry.name.endsWith(ext));
      if (extension === undefined) continue;
      if (entry.name.startsWith('.') || entry.name.startsWith('#') || rel.includes(' ')) continue;
      if ((entry.name.match(/\./g) ?? []).length > 1) continue;
      const module = rel.slice(0, -extension.length);
      if (module === 'schema') {
        schema = full;
        continue;
      }
      if (module === 'crons') crons = full;
      modules.push({ module, file: full });
    }
  };
  walk(functionsDir);
  modules.sort((a, b) => (a.module < b.module ? -1 : 1));
  return { modules, schema, crons };
}

export interface Bundle {
  readonly dir: string;
  readonly modules: Map<string, Record<string, unknown>>;
  /** The default export of schema.ts, when there is one. */
  readonly schema: unknown;
  /** A hash of the functions folder's sources: the same code hashes the same on every server. */
  readonly codeHash: string;
}

let buildCounter = 0;

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function bundleFunctions(functionsDir: string, buildRoot: string): Promise<Bundle> {
  const { modules, schema } = listModules(functionsDir);
  const entryPoints: Record<string, string> = {};
  for (const { module, file } of modules) entryPoints[module] = file;
  // The schema is bundled beside the modules, under a name reserved for it.
  if (schema !== null) entryPoints['__schema__'] = schema;
  mkdirSync(buildRoot, { recursive: true });
  const dir = join(buildRoot, `${Date.now().toString(36)}-${process.pid}-${++buildCounter}`);
  try {
    await esbuild.build({
      entryPoints,
      outdir: dir,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      splitting: true,
      packages: 'external',
      sourcemap: 'linked',
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
      // Keep names so stack traces and console output show the user's own identifiers.
      keepNames: true,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const failure = error as { errors?: esbuild.Message[] };
    const details = (failure.errors ?? [])
      .map(
        (m) =>
          `${m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ` : ''}${m.text}`,
      )
      .join('\n  ');
    throw new LoadError(
      `Could not bundle ${functionsDir}:\n  ${details || (error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  // Older builds are no longer imported by new code: remove this process's, and those of
  // processes gone. Other live servers of the same folder (a fleet on one host) keep theirs.
  for (const entry of readdirSync(buildRoot)) {
    if (join(buildRoot, entry) === dir) continue;
    const owner = Number(entry.split('-')[1]);
    if (owner === process.pid || !processAlive(owner)) {
      rmSync(join(buildRoot, entry), { recursive: true, force: true });
    }
  }
  const loaded = new Map<string, Record<string, unknown>>();
  for (const { module } of modules) {
    loaded.set(module, await importModule(join(dir, `${module}.mjs`), `${module}`));
  }
  let schemaExport: unknown = null;
  if (schema !== null) {
    const exports = await importModule(join(dir, '__schema__.mjs'), 'schema');
    schemaExport = exports.default ?? null;
    if (schemaExport === null) {
      throw new LoadError('schema.ts has no default export; export default defineSchema({...})');
    }
  }
  const hash = createHash('sha256');
  for (const file of [...modules.map((m) => m.file), ...(schema === null ? [] : [schema])]) {
    hash.update(relative(functionsDir, file)).update('\u0000').update(readFileSync(file));
  }
  return { dir, modules: loaded, schema: schemaExport, codeHash: hash.digest('hex').slice(0, 16) };
}

async function importModule(file: string, name: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new LoadError(
      `Loading module "${name}" failed: ${(error as Error).stack ?? String(error)}`,
      {
        cause: error,
      },
    );
  }
}
