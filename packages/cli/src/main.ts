/**
 * The `sleigh` command line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCode, LoadError } from '@sleigh/engine';
import { SLEIGH_VERSION } from '@sleigh/server';
import { jsonToConvex, type JSONValue } from 'convex/values';
import {
  CliError,
  consoleOutput,
  lockDataDir,
  locations,
  openStore,
  type Output,
} from './context.js';
import { jobs } from './jobs.js';
import { serveUntilSignalled } from './serve.js';
import { exportSnapshot, importSnapshot } from './snapshot.js';

const USAGE = `Usage: sleigh <command> [options]

Commands:
  dev [functionsDir]           Serve a functions folder (default ./convex), reload on changes
  serve [functionsDir]         Serve a functions folder, for production (no watching)
  run <module:function> [json] Run any function (internal ones too) on a running server
  codegen [functionsDir]       Write _generated/ for a functions folder
  export [functionsDir]        Write a snapshot of every table (--path <dir>)
  import <snapshot>            Load a snapshot into an empty store
  jobs failed <pool>           List a workpool's jobs that failed for good (dead letters)
  jobs retry <pool>            Run them again (all, --limit <n> oldest, or --id <id> ...)

Options:
  --port <n>           Port to serve on (default 3210)
  --host <address>     Address to listen on (default 127.0.0.1)
  --data-dir <dir>     Where the SQLite file and the admin key live (default .sleigh beside the folder)
  --db <url>           Use PostgreSQL instead of SQLite (postgres://user@host:5432/db; or SLEIGH_DB)
  --schema <name>      PostgreSQL schema holding the deployment (default sleigh)
  --admin-key <key>    Admin key (or SLEIGH_ADMIN_KEY); default: generated per data directory
  --url <url>          Server for \`run\` and \`jobs\` (default http://127.0.0.1:3210, or SLEIGH_URL)
  --path <dir>         Snapshot folder for \`export\`
  --functions <dir>    Functions folder for \`run\`/\`import\` (to find the data directory)
  -h, --help           Show this help
  -v, --version        Show the version

Environment for dev and serve:
  SLEIGH_JOB_LEASE_MS       How long a running action stays a server's without renewal before
                            another takes it back (default 30000)
  SLEIGH_SHUTDOWN_GRACE_MS  On SIGTERM/SIGINT, how long running jobs may finish before they
                            are handed back (default 10000)
`;

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        db: { type: 'string' },
        schema: { type: 'string' },
        'admin-key': { type: 'string' },
        url: { type: 'string' },
        path: { type: 'string' },
        functions: { type: 'string' },
        limit: { type: 'string' },
        id: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${USAGE}`, 2);
  }
}

function port(value: string | undefined): number {
  if (value === undefined) return 3210;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CliError(`--port must be a port number, got "${value}"`, 2);
  return n;
}

/** A JSON value as people read it: Convex values (int64, bytes) shown plainly. */
function display(json: JSONValue): string {
  return JSON.stringify(
    jsonToConvex(json),
    (_key, value: unknown) =>
      typeof value === 'bigint'
        ? `${value}n`
        : value instanceof ArrayBuffer
          ? `<${value.byteLength} bytes>`
          : value,
    2,
  );
}

/** Where the running server is, and the admin key to use with it. */
export function serverAccess(values: ReturnType<typeof parse>['values']): {
  url: string;
  adminKey: string;
} {
  const where = locations({ functionsDir: values.functions, dataDir: values['data-dir'] });
  let adminKey = values['admin-key'] ?? process.env.SLEIGH_ADMIN_KEY;
  const keyFile = join(where.dataDir, 'admin_key');
  if (adminKey === undefined && existsSync(keyFile))
    adminKey = readFileSync(keyFile, 'utf8').trim();
  if (adminKey === undefined) {
    throw new CliError(
      `No admin key: pass --admin-key, set SLEIGH_ADMIN_KEY, or run from the project (${keyFile})`,
    );
  }
  return { url: values.url ?? process.env.SLEIGH_URL ?? 'http://127.0.0.1:3210', adminKey };
}

async function run(
  positionals: string[],
  values: ReturnType<typeof parse>['values'],
  output: Output,
): Promise<number> {
  const [path, argsText] = positionals;
  if (path === undefined)
    throw new CliError(
      'sleigh run needs a function: sleigh run messages:list \'{"channel":"a"}\'',
      2,
    );
  let args: unknown = {};
  if (argsText !== undefined) {
    try {
      args = JSON.parse(argsText);
    } catch {
      throw new CliError(`The arguments are not valid JSON: ${argsText}`, 2);
    }
  }
  const { url, adminKey } = serverAccess(values);
  let response: Response;
  try {
    response = await fetch(`${url}/api/function`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Convex ${adminKey}` },
      body: JSON.stringify({ path, args, format: 'convex_encoded_json' }),
    });
  } catch (error) {
    throw new CliError(`Cannot reach a Sleigh server at ${url}: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => null)) as {
    status?: string;
    value?: JSONValue;
    errorMessage?: string;
    errorData?: JSONValue;
    message?: string;
    logLines?: string[];
  } | null;
  for (const line of body?.logLines ?? []) output.err(line);
  if (body?.status === 'success') {
    output.out(display(body.value ?? null));
    return 0;
  }
  if (body?.status === 'error') {
    output.err(body.errorMessage ?? 'The function failed');
    if (body.errorData !== undefined) output.err(`data: ${display(body.errorData)}`);
    return 1;
  }
  throw new CliError(
    `The server refused the call (HTTP ${response.status}): ${body?.message ?? 'no details'}`,
  );
}

export async function main(argv: string[], output: Output = consoleOutput): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      output.out(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === '-v' || command === '--version') {
      output.out(`sleigh ${SLEIGH_VERSION}`);
      return 0;
    }
    const { values, positionals } = parse(rest);
    if (values.help === true) {
      output.out(USAGE);
      return 0;
    }
    switch (command) {
      case 'dev':
      case 'serve': {
        const where = locations({
          functionsDir: positionals[0],
          dataDir: values['data-dir'],
          db: values.db,
          schema: values.schema,
        });
        return await serveUntilSignalled(
          {
            where,
            port: port(values.port),
            host: values.host ?? '127.0.0.1',
            adminKey: values['admin-key'] ?? null,
            watch: command === 'dev',
          },
          output,
        );
      }
      case 'run':
        return await run(positionals, values, output);
      case 'jobs':
        return await jobs(positionals, values, serverAccess(values), output);
      case 'codegen': {
        const where = locations({ functionsDir: positionals[0] });
        const changed = generateCode(where.functionsDir);
        output.out(
          changed.length === 0
            ? `${join(where.functionsDir, '_generated')} is up to date`
            : `Wrote ${changed.map((file) => `_generated/${file}`).join(', ')}`,
        );
        return 0;
      }
      case 'export': {
        const where = locations({
          functionsDir: positionals[0] ?? values.functions,
          dataDir: values['data-dir'],
          db: values.db,
          schema: values.schema,
        });
        const store = await openStore(where);
        try {
          const path =
            values.path ?? `sleigh-export-${new Date().toISOString().replace(/[:.]/g, '-')}`;
          const manifest = await exportSnapshot(store, path, output);
          const documents = manifest.tables.reduce((sum, table) => sum + table.documents, 0);
          output.out(
            `Exported ${documents} documents from ${manifest.tables.length} tables to ${path}`,
          );
          return 0;
        } finally {
          await store.close();
        }
      }
      case 'import': {
        const snapshot = positionals[0];
        if (snapshot === undefined)
          throw new CliError(
            'sleigh import needs a snapshot folder: sleigh import ./sleigh-export-…',
            2,
          );
        const where = locations({
          functionsDir: values.functions,
          dataDir: values['data-dir'],
          db: values.db,
          schema: values.schema,
        });
        const release = lockDataDir(where, 'importing');
        const store = await openStore(where);
        try {
          const count = await importSnapshot(store, snapshot, output);
          output.out(`Imported ${count} documents from ${snapshot}`);
          return 0;
        } finally {
          await store.close();
          release();
        }
      }
      default:
        throw new CliError(`Unknown command "${command}"\n\n${USAGE}`, 2);
    }
  } catch (error) {
    if (error instanceof CliError || error instanceof LoadError) {
      output.err(`sleigh: ${error.message}`);
      return error instanceof CliError ? error.exitCode : 1;
    }
    output.err(`sleigh: ${(error as Error).stack ?? String(error)}`);
    return 1;
  }
}
