/**
 * The `sleigh` command line.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateCode, LoadError } from '@sleigh/engine';
import { SLEIGH_VERSION } from '@sleigh/server';
import { CliError, consoleOutput, locations, type Output } from './context.js';
import { jobs } from './jobs.js';
import { serverAccess } from './remote.js';
import { runFunction } from './run.js';
import { serveUntilSignalled } from './serve.js';
import { exportCommand, importCommand } from './snapshot/index.js';

const USAGE = `Usage: sleigh <command> [options]

Commands:
  dev [functionsDir]           Serve a functions folder (default ./convex), reload on changes
  serve [functionsDir]         Serve a functions folder, for production (no watching)
  run <module:function> [json] Run any function (internal ones too) on a running server
  codegen [functionsDir]       Write _generated/ for a functions folder
  export [functionsDir]        Write a snapshot of every table (--path <dir>)
  import <snapshot>            Load a snapshot into an empty store
  jobs failed <pool>           List a workpool's jobs that failed for good (dead letters),
                               the oldest 100 (or --limit <n>), saying when there are more
  jobs retry <pool>            Run them again (all, --limit <n> oldest, or --id <id> ...),
                               naming those it could not (then it exits 1)
  jobs pause <pool>            Pause a workpool on every server: none of its jobs start (those
                               running finish; enqueues are kept) until
  jobs resume <pool>           lets them start again

Options:
  --port <n>           dev, serve: port to listen on (default 3210; 0 picks a free one)
  --host <address>     dev, serve: address to listen on (default 127.0.0.1)
  --data-dir <dir>     Where the SQLite file and the admin key live (default .sleigh beside the
                       functions folder)
  --db <url>           dev, serve, export, import: use PostgreSQL instead of SQLite
                       (postgres://user@host:5432/db; or SLEIGH_DB)
  --schema <name>      PostgreSQL schema holding the deployment (default sleigh)
  --admin-key <key>    Admin key, 16+ characters (or SLEIGH_ADMIN_KEY); default: the one
                       generated for the data directory
  --url <url>          run, jobs: the server (default http://127.0.0.1:3210, or SLEIGH_URL)
  --path <dir>         export: the snapshot folder to create (default sleigh-export-<time>)
  --functions <dir>    run, jobs, export, import: the functions folder, whose data directory
                       (.sleigh beside it) holds the admin key or the SQLite file (default ./convex)
  --limit <n>          jobs: at most n jobs, oldest first
  --id <id>            jobs retry: retry this job (repeat for several)
  -h, --help           Show this help
  -v, --version        Show the version

Environment for dev and serve:
  SLEIGH_JOB_LEASE_MS       How long a running action stays a server's without renewal before
                            another takes it back (default 30000)
  SLEIGH_SHUTDOWN_GRACE_MS  On SIGTERM/SIGINT, how long running jobs may finish before they
                            are handed back (default 10000)
  SLEIGH_FUNCTION_TIMEOUT_MS  How long a query or mutation may run before it fails
                            (default 10000)
`;

type OptionName =
  | 'port'
  | 'host'
  | 'data-dir'
  | 'db'
  | 'schema'
  | 'admin-key'
  | 'url'
  | 'path'
  | 'functions'
  | 'limit'
  | 'id';

const SERVING: readonly OptionName[] = ['port', 'host', 'data-dir', 'db', 'schema', 'admin-key'];
const CALLING: readonly OptionName[] = ['url', 'admin-key', 'functions', 'data-dir'];

/** What each command takes: at most so many positionals, and these options. */
const COMMANDS: Record<string, { positionals: number; options: readonly OptionName[] }> = {
  dev: { positionals: 1, options: SERVING },
  serve: { positionals: 1, options: SERVING },
  run: { positionals: 2, options: CALLING },
  jobs: { positionals: 2, options: [...CALLING, 'limit', 'id'] },
  codegen: { positionals: 1, options: [] },
  export: { positionals: 1, options: ['functions', 'data-dir', 'db', 'schema', 'path'] },
  import: { positionals: 1, options: ['functions', 'data-dir', 'db', 'schema'] },
};

/** Options and arguments a command does not use are refused: they are usually typos. */
function checkUsage(
  command: string,
  values: ReturnType<typeof parse>['values'],
  positionals: string[],
): void {
  const spec = COMMANDS[command]!;
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined || name === 'help' || name === 'version') continue;
    if (!spec.options.includes(name as OptionName))
      throw new CliError(`sleigh ${command} does not take --${name}\n\n${USAGE}`, 2);
  }
  const extra = positionals[spec.positionals];
  if (extra !== undefined) {
    throw new CliError(
      `sleigh ${command} takes at most ${spec.positionals} argument${spec.positionals === 1 ? '' : 's'}; unexpected "${extra}"\n\n${USAGE}`,
      2,
    );
  }
}

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
  // Digits only: Number() would also take '', ' ', '0x1000' and '1e3'.
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
    throw new CliError(`--port must be a port number from 0 to 65535, got "${value}"`, 2);
  return Number(value);
}

function host(value: string | undefined): string {
  if (value === undefined) return '127.0.0.1';
  // '' would listen on every interface, which must be asked for by name (0.0.0.0 or ::).
  if (!/^[^\s/]+$/.test(value))
    throw new CliError(
      `--host must be an address or host name (0.0.0.0 for every interface), got "${value}"`,
      2,
    );
  return value;
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
    if (!Object.hasOwn(COMMANDS, command))
      throw new CliError(`Unknown command "${command}"\n\n${USAGE}`, 2);
    const { values, positionals } = parse(rest);
    if (values.help === true) {
      output.out(USAGE);
      return 0;
    }
    if (values.version === true) {
      output.out(`sleigh ${SLEIGH_VERSION}`);
      return 0;
    }
    checkUsage(command, values, positionals);
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
            host: host(values.host),
            adminKey: values['admin-key'] ?? null,
            watch: command === 'dev',
          },
          output,
        );
      }
      case 'run':
        return await runFunction(positionals, () => serverAccess(values), output);
      case 'jobs':
        return await jobs(positionals, values, () => serverAccess(values), output);
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
      case 'export':
        return await exportCommand(
          locations({
            functionsDir: positionals[0] ?? values.functions,
            dataDir: values['data-dir'],
            db: values.db,
            schema: values.schema,
          }),
          values.path,
          output,
        );
      case 'import': {
        const snapshot = positionals[0];
        if (snapshot === undefined)
          throw new CliError(
            'sleigh import needs a snapshot folder: sleigh import ./sleigh-export-…',
            2,
          );
        return await importCommand(
          locations({
            functionsDir: values.functions,
            dataDir: values['data-dir'],
            db: values.db,
            schema: values.schema,
          }),
          snapshot,
          output,
        );
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
