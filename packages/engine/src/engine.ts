/**
 * The engine: loads a functions folder and runs its queries, mutations and actions against a
 * store.
 *
 * - A query runs in a read transaction (one snapshot) and returns its value, the snapshot's
 *   timestamp and its read set.
 * - A mutation runs in a write transaction and commits; when it loses a race (a conflict) it
 *   runs again from scratch, so each mutation takes effect exactly once. A mutation that throws
 *   writes nothing.
 * - An action runs outside any transaction and calls queries, mutations and actions, each a run
 *   of its own.
 *
 * Calls between functions inside a transaction (ctx.runQuery, ctx.runMutation) share it; a
 * nested mutation is a subtransaction, undone on its own if it throws.
 *
 *   run(path, args) ─▶ lookup (visibility) ─▶ validate args ─▶ transaction ─▶ handler (syscalls)
 *                                                             ◀─ retry on conflict (mutations)
 *                  ◀─ outcome { value | error, logLines, ts, readSet } ◀─ validate return value
 */
import { randomBytes, randomInt } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  StorageError,
  tableNumberOfId,
  type Catalog,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { jsonToConvex, type JSONValue, type ValidatorJSON } from 'convex/values';
import { FunctionError, FunctionErrorCode, SkipRun } from './errors.js';
import { bundleFunctions, LoadError } from './loader/bundle.js';
import {
  checkFleet,
  deploymentOutline,
  deploymentShape,
  type FleetMember,
} from './loader/fleet-guard.js';
import { generateCode } from './loader/codegen.js';
import { aKind, Registry, type FunctionInfo } from './loader/registry.js';
import { argsProblem, MAX_ARGS_NESTING, tooDeepMessage } from './runtime/nesting.js';
import { applySchema, parseSchema, type ApplyReport, type Schema } from './loader/schema.js';
import { installConsoleCapture } from './runtime/console.js';
import {
  executions,
  countScheduledArgs,
  newTransactionState,
  seededRandom,
  type Caller,
  type Execution,
  type FunctionKind,
  type TransactionState,
  type UserIdentity,
} from './runtime/context.js';
import { installDeterminism } from './runtime/determinism.js';
import { findLogged, recordOutcome, sweep as sweepMutationLog } from './mutation-log.js';
import {
  CalledFunctionError,
  type AppFunction,
  type HealthReport,
  type Host,
} from './runtime/host.js';
import { CronRollout } from './jobs/cron-rollout.js';
import { checkCrons, cronsOf } from './jobs/crons.js';
import type { TransactionHooks } from './jobs/pool-runner.js';
import {
  listFailed,
  retryFailed,
  retryFailedPage,
  type FailedJob,
  type RetryCursor,
  type SkippedJob,
} from './jobs/pool-graph.js';
import { Monitor } from './observe/monitor.js';
import { PoolService, writePaused } from './jobs/pool-service.js';
import { RunningAttempts } from './jobs/attempts.js';
import { SYSTEM_MODULES } from './system/functions.js';
import { writeWithRetry } from './jobs/write-retry.js';
import { Contention } from './contention.js';
import type { JobRunner, JobRunnerOptions } from './jobs/runner.js';
import {
  cancelScheduled,
  getScheduled,
  insertScheduled,
  MAX_SCHEDULED_PER_CALL,
  settle,
  type ScheduledFunction,
} from './jobs/scheduled.js';
import { ReadSet } from './runtime/readset.js';
import { Background } from './background.js';
import {
  asFunctionError,
  describeThrown,
  success,
  type ActionOutcome,
  type MutationOutcome,
  type QueryOutcome,
  type Result,
} from './outcomes.js';
import { installSyscalls } from './runtime/syscalls.js';
import { LONGEST_WAIT_MS } from './jobs/timers.js';
import { checkValue } from './runtime/validator.js';

export type { ActionOutcome, MutationOutcome, QueryOutcome, Result, Success } from './outcomes.js';

export interface EngineOptions {
  readonly store: Store;
  /** The functions folder (Convex's `convex/`). */
  readonly functionsDir: string;
  /** Where bundles go; default `.sleigh/build` beside the functions folder. */
  readonly buildDir?: string;
  /** Write `_generated/` into the functions folder (default true). */
  readonly codegen?: boolean;
  readonly deploymentName?: string;
  /** Called with warnings about the app (unsupported features it uses). */
  readonly onWarning?: (message: string) => void;
  /**
   * How long a query or mutation may run, wall clock, before it fails (default 10 s). Convex
   * allows 1 s of execution; this is a guard against handlers that never finish (awaiting a
   * promise nothing resolves), which would otherwise hold their transaction, and on SQLite every
   * write behind it, for good. A handler that never yields (a synchronous endless loop) cannot
   * be stopped inside the process.
   */
  readonly functionTimeoutMs?: number;
}

export interface CallOptions {
  /** Who is calling: clients reach only public functions. Default `client`. */
  readonly caller?: Caller;
  readonly identity?: UserIdentity | null;
  readonly requestId?: string;
  /**
   * Makes a mutation idempotent: its outcome is recorded with it under this key, and a second
   * call with the same key returns that outcome without running again (a client's resend).
   */
  readonly idempotencyKey?: string;
  /** With an idempotency key: the caller knows this is the first attempt, so skip the lookup. */
  readonly firstAttempt?: boolean;
  /**
   * This run is the scheduled function with this id. For a mutation, its transaction also
   * checks that the job is still pending and marks it done, so it runs exactly once.
   */
  readonly scheduledFunctionId?: string;
  /** Code to run in a mutation's transaction, before and after its handler (pool jobs). */
  readonly hooks?: TransactionHooks;
  /** This run is the pool job with this id (`pool.dependencies()` reads its dependencies). */
  readonly poolJobId?: string;
  /**
   * A query's journal from its previous run (QueryOutcome.journal), as a subscription keeps it:
   * a paginated query then ends its page where that run's page ended.
   */
  readonly journal?: string | null;
}

/** The end cursor a journal (client-held, so untrusted) pins a page to, or null. */
function pinnedEndOf(journal: string | null | undefined): string | null {
  if (typeof journal !== 'string' || journal.length > 10_000) return null;
  try {
    const parsed = JSON.parse(journal) as { endCursor?: unknown } | null;
    return typeof parsed?.endCursor === 'string' ? parsed.endCursor : null;
  } catch {
    return null;
  }
}

let requestCounter = 0;
const requestPrefix = randomBytes(4).toString('hex');

/** Retries of a mutation that keeps conflicting; each waits a little longer. */
const MAX_ATTEMPTS = 100;
/** How long a mutation waits for an unreachable database before it fails. */
const OUTAGE_PATIENCE_MS = 30_000;

function hashSeed(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** `_creationTime` values: wall-clock milliseconds, strictly increasing within the process. */
let lastCreationTime = 0;
/** The `pool.startupJobs()` exports of the loaded modules, named `module:export`. */
function startupJobsOf(
  modules: ReadonlyMap<string, Record<string, unknown>>,
): Array<{ name: string; pool: unknown; options: unknown; items: unknown }> {
  const found = [];
  for (const [module, exports] of modules) {
    for (const [name, value] of Object.entries(exports)) {
      const declared = value as {
        isStartupJobs?: unknown;
        pool?: unknown;
        options?: unknown;
        items?: unknown;
      } | null;
      if (typeof declared !== 'object' || declared === null || declared.isStartupJobs !== true)
        continue;
      found.push({
        name: `${module}:${name}`,
        pool: declared.pool,
        options: declared.options,
        items: declared.items,
      });
    }
  }
  return found;
}

/** The signature of the function at `path` among `signatures` (null: none). */
function signatureIn(signatures: Readonly<Record<string, string>>, path: string): string | null {
  return Object.hasOwn(signatures, path) ? signatures[path]! : null;
}

function nextCreationTime(): number {
  const now = Date.now();
  lastCreationTime = now > lastCreationTime ? now : lastCreationTime + 0.001;
  return lastCreationTime;
}

/** The kind of the function at `path`, or null when there is none. */
function functionKind(registry: Registry, path: string): FunctionKind | null {
  try {
    return registry.lookup(path, null, 'function').kind;
  } catch {
    return null;
  }
}

function idChecker(catalog: Catalog): (id: string, table: string) => boolean {
  return (id, table) => {
    const number = tableNumberOfId(id);
    return number !== null && catalog.table(table)?.number === number;
  };
}

export class Engine implements Host {
  readonly store: Store;
  readonly functionsDir: string;
  readonly deploymentName: string;
  private readonly buildDir: string;
  private readonly codegen: boolean;
  private readonly onWarning: (message: string) => void;
  private readonly functionTimeoutMs: number;
  private registry = new Registry(new Map());
  private schema: Schema | null = null;
  /** Each app function's signature (kind, visibility, validators), by path (fleet-guard.ts). */
  private signatures: Readonly<Record<string, string>> = {};
  /** Retries run one at a time in this process, so a hot document stops bouncing them. */
  private retryLane: Promise<unknown> = Promise.resolve();
  /** Which functions' first attempts conflict so often that they queue in the lane too. */
  private readonly contention = new Contention();
  /** Workpools as functions use them (the `sleigh/pool/*` syscalls). */
  readonly pools: PoolService;
  /** Pool job attempts running in this process: their abort signals and heartbeats. */
  readonly attempts = new RunningAttempts();
  /** What this process knows of itself: execution log, pool throughput, commit rate. */
  readonly monitor = new Monitor();
  /** The runners of scheduled functions, workpools and crons, and their host. */
  private readonly background: Background;
  /** Whose crons are in force while versions share the database (jobs/cron-rollout.ts). */
  private readonly crons: CronRollout;

  private constructor(options: EngineOptions) {
    this.store = options.store;
    this.functionTimeoutMs = options.functionTimeoutMs ?? 10_000;
    this.functionsDir = resolve(options.functionsDir);
    this.buildDir = options.buildDir ?? join(dirname(this.functionsDir), '.sleigh', 'build');
    this.codegen = options.codegen ?? true;
    this.deploymentName = options.deploymentName ?? 'sleigh';
    this.onWarning = options.onWarning ?? ((message) => console.warn(`sleigh: ${message}`));
    this.pools = new PoolService(
      this.store,
      {
        resolve: (path, kind) => {
          const info = this.registry.lookup(path, null, 'function');
          if (kind !== null && info.kind !== kind) {
            throw new FunctionError(
              FunctionErrorCode.InvalidArguments,
              `${info.path} is ${aKind(info.kind)}, not ${aKind(kind)}`,
            );
          }
          return { path: info.path, kind: info.kind };
        },
        checkArgs: (path, args, catalog) =>
          this.checkArgs(this.registry.lookup(path, null, 'function'), args, catalog),
        checkArgField: (path, field, value, catalog) =>
          this.checkArgField(this.registry.lookup(path, null, 'function'), field, value, catalog),
        signatureOf: (path) => this.signatureOf(path),
      },
      nextCreationTime,
      this.attempts,
    );
    this.crons = new CronRollout(this.store, nextCreationTime);
    this.background = new Background(
      this,
      this.pools,
      this.attempts,
      this.monitor.pools,
      this.crons,
    );
  }

  /** Builds and loads the functions folder and applies its schema. */
  static async start(options: EngineOptions): Promise<Engine> {
    installSyscalls();
    installDeterminism();
    installConsoleCapture();
    process.setSourceMapsEnabled(true);
    const engine = new Engine(options);
    await engine.reload();
    return engine;
  }

  /**
   * Rebuilds the functions folder and swaps it in: running functions finish on the code they
   * started with. Throws a LoadError (and keeps the previous code) when the folder does not
   * build, a module fails to load, or the schema cannot be applied.
   */
  async reload(): Promise<ApplyReport> {
    if (this.codegen) generateCode(this.functionsDir);
    const bundle = await bundleFunctions(this.functionsDir, this.buildDir);
    let schema: Schema | null = null;
    if (bundle.schema !== null) {
      const parsed = parseSchema(bundle.schema);
      parsed.warnings.forEach((warning) => this.onWarning(warning));
      schema = parsed.schema;
    }
    // The app's modules, and Sleigh's own `_system/` functions beside them (admin only).
    const registry = new Registry(new Map([...bundle.modules, ...SYSTEM_MODULES]));
    // Everything that can refuse the code is checked before the schema changes anything.
    const crons = cronsOf(bundle.modules.get('crons'));
    checkCrons(
      crons,
      (path) => functionKind(registry, path),
      (path, args) =>
        this.checkArgs(registry.lookup(path, null, 'function'), args, this.store.catalog()),
    );
    // Servers sharing the store must agree on schema, crons and functions (fleet-guard.ts).
    const outline = deploymentOutline(schema, crons, registry.all());
    const member: FleetMember = {
      shape: deploymentShape(outline),
      outline,
      code: bundle.codeHash,
      live: () => this.store.processes(),
    };
    let report: ApplyReport;
    try {
      report = await applySchema(this.store, schema, nextCreationTime, (tx) =>
        checkFleet(tx, member, nextCreationTime),
      );
    } catch (error) {
      if (error instanceof LoadError) throw error;
      throw new LoadError(`Applying the schema failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const signatures = outline.functions;
    const inForce = await this.crons.declare({
      crons,
      hash: outline.crons,
      signatureOf: (path) => signatureIn(signatures, path),
    });
    if (!inForce) {
      this.onWarning(
        `crons.ts declares other crons than the servers already running (${this.crons.waitingFor.join('; ')}): theirs stay in force until they stop, then this server's take effect`,
      );
    }
    this.registry = registry;
    this.schema = schema;
    this.signatures = signatures;
    try {
      await this.pools.enqueueStartup(startupJobsOf(bundle.modules), bundle.codeHash);
    } catch (error) {
      throw new LoadError(`Enqueueing startup jobs failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return report;
  }

  functions(): FunctionInfo[] {
    return this.registry.all();
  }

  async health(): Promise<HealthReport> {
    const servers = await this.store.processes();
    const self = servers.find((server) => server.self);
    const monitor = this.monitor;
    return {
      version: monitor.version,
      driver: this.store.driver,
      server: { id: self?.id ?? '', startedAt: monitor.startedAt },
      servers,
      commitsPerSecond: monitor.commitsPerSecond(),
      commits: monitor.commits,
      subscriptions: monitor.read('subscriptions'),
      connections: monitor.read('connections'),
      executions: monitor.executions.total,
    };
  }

  appFunctions(): AppFunction[] {
    return this.registry
      .all()
      .filter((info) => !info.module.startsWith('_system/'))
      .map(({ path, kind, visibility, args, returns }) => ({
        path,
        kind,
        visibility,
        args,
        returns,
      }))
      .sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  // Host: what syscalls ask of the engine.

  documentValidator(table: string): ValidatorJSON | null {
    if (this.schema === null || !this.schema.schemaValidation) return null;
    return this.schema.tables.get(table)?.documentType ?? null;
  }

  strictTables(): boolean {
    return this.schema !== null && this.schema.schemaValidation;
  }

  nextCreationTime(): number {
    return nextCreationTime();
  }

  // Scheduling: the syscalls' side (Host) and the runner's (JobHost).

  async schedule(
    execution: Execution,
    path: string,
    args: JSONValue,
    scheduledTime: number,
  ): Promise<string> {
    const info = this.registry.lookup(path, null, 'function');
    if (info.kind === 'query') {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `ctx.scheduler runs mutations and actions; ${info.path} is a query`,
      );
    }
    const state = execution.transaction;
    const count =
      state !== null ? ++state.metrics.functionsScheduled : ++execution.scheduledByAction;
    if (count > MAX_SCHEDULED_PER_CALL) {
      throw new FunctionError(
        FunctionErrorCode.InvalidWrite,
        `${execution.path} scheduled more than ${MAX_SCHEDULED_PER_CALL} functions in one call`,
      );
    }
    if (state !== null) {
      countScheduledArgs(state, JSON.stringify(args).length);
      return insertScheduled(
        state.tx as WriteTransaction,
        info.path,
        args,
        scheduledTime,
        nextCreationTime(),
        this.signatureOf(info.path),
      );
    }
    return writeWithRetry(this.store, (tx) =>
      insertScheduled(
        tx,
        info.path,
        args,
        scheduledTime,
        nextCreationTime(),
        this.signatureOf(info.path),
      ),
    );
  }

  async cancelScheduled(execution: Execution, id: string): Promise<void> {
    const state = execution.transaction;
    if (state !== null) return cancelScheduled(state.tx as WriteTransaction, id, execution.now);
    await writeWithRetry(this.store, (tx) => cancelScheduled(tx, id, Date.now()));
  }

  kindOf(path: string): FunctionKind | null {
    return functionKind(this.registry, path);
  }

  /** The signature of the app's function at `path` (null: none, or one of Sleigh's own). */
  signatureOf(path: string): string | null {
    return signatureIn(this.signatures, path);
  }

  /**
   * How many functions another live server on the database has that this one lacks or has
   * with other validators: above 0 while a deploy rolls out (its runners leave those functions'
   * jobs to the servers that run them as enqueued). Known once background work has started.
   */
  functionsLeftToOthers(): number {
    return this.background.functionsLeftToOthers();
  }

  /** Starts running background work in this process (a server does; tests may not). */
  startJobs(options: JobRunnerOptions = {}): JobRunner {
    return this.background.start(options);
  }

  /** Stops running background work: see Background.stop. */
  async stopJobs(graceMs?: number): Promise<void> {
    await this.background.stop(graceMs);
  }

  // Running functions.

  private checkArgs(info: FunctionInfo, args: JSONValue, catalog: Catalog): void {
    const problem = argsProblem(args, MAX_ARGS_NESTING);
    if (problem === 'too-deep') {
      throw new FunctionError(FunctionErrorCode.InvalidArguments, tooDeepMessage(info.path));
    }
    if (problem === 'not-finite') {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `Invalid arguments for ${info.path}: they hold a number too large for a double (such as 1e400); send Infinity and NaN in Convex's encoding ({"$float": …})`,
      );
    }
    let value;
    try {
      value = jsonToConvex(args);
    } catch (error) {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `Invalid arguments for ${info.path}: ${(error as Error).message}`,
      );
    }
    if (
      typeof value !== 'object' ||
      value === null ||
      Array.isArray(value) ||
      value instanceof ArrayBuffer
    ) {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `Invalid arguments for ${info.path}: arguments must be an object`,
      );
    }
    const mismatch = checkValue(info.args, value, idChecker(catalog));
    if (mismatch !== null) {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `Invalid arguments for ${info.path}: ${mismatch.path === '' ? 'the arguments' : `\`${mismatch.path.slice(1)}\``}: ${mismatch.message}`,
      );
    }
  }

  /** Checks one argument field against its validator, when the arguments declare it. */
  private checkArgField(
    info: FunctionInfo,
    field: string,
    value: JSONValue,
    catalog: Catalog,
  ): void {
    const declared = info.args.type === 'object' ? info.args.value[field] : undefined;
    if (declared === undefined) return;
    const mismatch = checkValue(declared.fieldType, jsonToConvex(value), idChecker(catalog));
    if (mismatch !== null) {
      throw new FunctionError(
        FunctionErrorCode.InvalidArguments,
        `Invalid arguments for ${info.path}: \`${field}${mismatch.path}\`: ${mismatch.message}`,
      );
    }
  }

  /** Checks a handler's result against its `returns` validator; passes the JSON text on. */
  private checkReturn(info: FunctionInfo, result: string, catalog: Catalog): string {
    if (info.returns === null) return result;
    const mismatch = checkValue(
      info.returns,
      jsonToConvex(JSON.parse(result) as JSONValue),
      idChecker(catalog),
    );
    if (mismatch !== null) {
      throw new FunctionError(
        FunctionErrorCode.InvalidReturnValue,
        `Invalid return value of ${info.path}: ${mismatch.path === '' ? 'the value' : `\`${mismatch.path.slice(1)}\``}: ${mismatch.message}`,
      );
    }
    return result;
  }

  /** Calls the handler inside its execution context; returns its JSON result string. */
  private invoke(
    execution: Execution,
    info: FunctionInfo,
    args: JSONValue,
    nested = false,
  ): Promise<string> {
    const argsString = JSON.stringify([args]);
    const invoked = executions.run(execution, () => {
      switch (info.kind) {
        case 'query':
          return info.fn.invokeQuery!(argsString);
        case 'mutation':
          return info.fn.invokeMutation!(argsString);
        case 'action':
          return info.fn.invokeAction!(execution.requestId, argsString);
      }
    });
    // Nested calls run inside their caller's time; actions may run long (pools set limits).
    if (nested) return invoked;
    const running = info.kind === 'action' ? invoked : this.withinTimeLimit(info, invoked);
    // The execution log (the dashboard's Logs page): one record per top-level run.
    const startedAt = Date.now();
    const started = performance.now();
    const record = (error: unknown) =>
      this.monitor.executions.record({
        startedAt,
        durationMs: performance.now() - started,
        path: info.path,
        kind: info.kind,
        source:
          execution.poolJobId !== null
            ? 'pool'
            : execution.scheduledFunctionId !== null
              ? 'scheduler'
              : 'client',
        outcome: error === null ? 'success' : 'failure',
        error:
          error === null ? null : error instanceof Error ? error.message : describeThrown(error),
        logLines: execution.logLines,
      });
    void running.then(
      () => record(null),
      (error: unknown) => record(error),
    );
    return running;
  }

  /**
   * The handler's result, or a TimedOut failure once the time limit passes. The transaction is
   * then rolled back and released; the abandoned handler's later syscalls find it ended.
   */
  private withinTimeLimit(info: FunctionInfo, running: Promise<string>): Promise<string> {
    const limitMs = this.functionTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => {
          reject(
            new FunctionError(
              FunctionErrorCode.TimedOut,
              `${info.path} did not finish within ${limitMs / 1000} s, the time limit of a ${info.kind}${info.kind === 'mutation' ? '; nothing it wrote was kept' : ''}`,
            ),
          );
        },
        Math.min(limitMs, LONGEST_WAIT_MS),
      );
    });
    // The handler may still fail after it was abandoned: nobody is waiting for that.
    running.catch(() => undefined);
    return Promise.race([running, expired]).finally(() => clearTimeout(timer));
  }

  /**
   * A new execution. Math.random in a query is seeded from its path and arguments (a re-run
   * draws the same numbers); in a mutation from a seed drawn per call, kept across retries.
   */
  private execution(
    info: FunctionInfo,
    transaction: TransactionState | null,
    args: JSONValue,
    options: CallOptions,
    logLines: string[],
    seed: number = info.kind === 'query'
      ? hashSeed(`${info.path}\u0000${JSON.stringify(args)}`)
      : randomInt(2 ** 31),
  ): Execution {
    return {
      host: this,
      kind: info.kind,
      path: info.path,
      visibility: info.visibility,
      transaction,
      logLines,
      identity: options.identity ?? null,
      requestId: options.requestId ?? `${requestPrefix}-${(++requestCounter).toString(36)}`,
      scheduledFunctionId: options.scheduledFunctionId ?? null,
      poolJobId: options.poolJobId ?? null,
      scheduledByAction: 0,
      now: Date.now(),
      random: seededRandom(seed),
    };
  }

  /** Ends the streams a handler left open, so that what they read is in the read set. */
  private static closeStreams(state: TransactionState): void {
    for (const stream of state.streams.values()) stream.close();
    state.streams.clear();
  }

  async query(path: string, args: JSONValue, options: CallOptions = {}): Promise<QueryOutcome> {
    try {
      return await this.store.read((tx) => this.queryIn(tx, path, args, options));
    } catch (error) {
      return Engine.storeFailure(path, error);
    }
  }

  /**
   * Runs several queries on one snapshot (how subscriptions stay consistent: every result of a
   * Transition comes from the same snapshot). Outcomes are in the order of `calls`.
   */
  async queryBatch(
    calls: ReadonlyArray<{
      readonly path: string;
      readonly args: JSONValue;
      readonly options?: CallOptions;
    }>,
  ): Promise<{ ts: bigint; outcomes: QueryOutcome[] }> {
    return this.store.read(async (tx) => {
      const outcomes = await Promise.all(
        calls.map((call) =>
          this.queryIn(tx, call.path, call.args, call.options ?? {}).catch((error: unknown) =>
            Engine.storeFailure(call.path, error),
          ),
        ),
      );
      return { ts: await tx.timestamp(), outcomes };
    });
  }

  /** The outcome of a query the store could not serve (a lost database connection). */
  private static storeFailure(path: string, error: unknown): QueryOutcome {
    const failure = new FunctionError(
      FunctionErrorCode.Internal,
      `${path} could not read the database: ${(error as Error).message}`,
      { cause: error },
    );
    return { ok: false, error: failure, logLines: [], ts: 0n, readSet: new ReadSet() };
  }

  private async queryIn(
    tx: ReadTransaction,
    path: string,
    args: JSONValue,
    options: CallOptions,
  ): Promise<QueryOutcome> {
    const logLines: string[] = [];
    const readSet = new ReadSet();
    const state = newTransactionState(tx, false, readSet, pinnedEndOf(options.journal));
    const snapshot = this.trackSnapshot(tx, state);
    let info: FunctionInfo;
    try {
      info = this.registry.lookup(path, 'query', options.caller ?? 'client');
      state.limited = !info.module.startsWith('_system/');
      this.checkArgs(info, args, tx.catalog());
    } catch (error) {
      return {
        ok: false,
        error: asFunctionError(path, error),
        logLines,
        ts: await snapshot,
        readSet,
      };
    }
    const execution = this.execution(info, state, args, options, logLines);
    let json: string | null = null;
    let failure: FunctionError | null = null;
    try {
      json = this.checkReturn(info, await this.invoke(execution, info, args), tx.catalog());
    } catch (error) {
      if (state.doomed !== null) throw state.doomed;
      failure = asFunctionError(info.path, error);
    }
    Engine.closeStreams(state);
    const journal = state.journal.paginated
      ? JSON.stringify({ endCursor: state.journal.end })
      : null;
    const extra = { logLines, ts: await snapshot, readSet, journal };
    return json !== null ? success(json, extra) : { ok: false as const, error: failure!, ...extra };
  }

  /** Learns the snapshot timestamp in the background, for getSnapshotTs and the outcome. */
  private trackSnapshot(tx: ReadTransaction, state: TransactionState): Promise<bigint> {
    const snapshot = tx.timestamp().then((ts) => {
      state.snapshotTs = ts;
      return ts;
    });
    snapshot.catch(() => undefined);
    return snapshot;
  }

  async mutation(
    path: string,
    args: JSONValue,
    options: CallOptions = {},
  ): Promise<MutationOutcome> {
    let info: FunctionInfo;
    try {
      info = this.registry.lookup(path, 'mutation', options.caller ?? 'client');
      this.checkArgs(info, args, this.store.catalog());
    } catch (error) {
      return { ok: false, error: asFunctionError(path, error), logLines: [] };
    }
    const seed = randomInt(2 ** 31);
    let outageSince: number | null = null;
    for (let attempt = 1; ; attempt++) {
      const logLines: string[] = [];
      const run = () => this.attemptMutation(info, args, options, seed, logLines);
      // The first attempt runs at once, unless its function's first attempts mostly conflict
      // (contention.ts); retries queue in the retry lane, one at a time.
      const sideBySide = attempt === 1 && !this.contention.serial(info.path);
      try {
        if (sideBySide) {
          const outcome = await run();
          this.contention.record(info.path, false);
          return outcome;
        }
        if (attempt === 1) this.monitor.queuedFirstAttempts++;
        const turn = this.retryLane.then(run, run);
        this.retryLane = turn.catch(() => undefined);
        return await turn;
      } catch (error) {
        if (sideBySide) this.contention.record(info.path, StorageError.is(error, 'conflict'));
        if (StorageError.is(error, 'unavailable')) {
          // The database went away (a restart, a failover): wait for it rather than fail. When
          // the connection died during COMMIT the outcome is unknown; a mutation with an
          // idempotency key finds out from the mutation log on its next attempt, so it takes
          // effect once. Without a key it cannot know, and says so.
          outageSince ??= Date.now();
          const ambiguous = !error.retryable;
          if (
            (!ambiguous || options.idempotencyKey !== undefined) &&
            Date.now() - outageSince < OUTAGE_PATIENCE_MS
          ) {
            if (ambiguous) options = { ...options, firstAttempt: false };
            await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2));
            continue;
          }
        } else if (StorageError.is(error) && error.retryable && attempt < MAX_ATTEMPTS) {
          if (StorageError.is(error, 'conflict')) this.monitor.conflicts++;
          await sleep(Math.min(50, attempt) * Math.random());
          continue;
        }
        const failure = StorageError.is(error, 'conflict')
          ? new FunctionError(
              FunctionErrorCode.Conflict,
              `${info.path} kept conflicting with concurrent mutations and gave up after ${attempt} attempts`,
              { cause: error },
            )
          : new FunctionError(
              FunctionErrorCode.Internal,
              `${info.path} failed: ${(error as Error).message}`,
              {
                cause: error,
              },
            );
        return { ok: false, error: failure, logLines };
      }
    }
  }

  /**
   * One attempt at a mutation. Resolves with the outcome when the mutation committed or its
   * handler failed (which rolls everything back); rejects with a retryable StorageError when
   * the transaction lost a race and should run again.
   */
  private async attemptMutation(
    info: FunctionInfo,
    args: JSONValue,
    options: CallOptions,
    seed: number,
    logLines: string[],
  ): Promise<MutationOutcome> {
    let failure: FunctionError | null = null;
    try {
      const key = options.idempotencyKey;
      const { value, commit } = await this.store.write(async (tx) => {
        if (key !== undefined && options.firstAttempt !== true) {
          const logged = await findLogged(tx, key);
          if (logged !== null) return { json: logged.json, replayedLogs: logged.logLines };
        }
        let job: ScheduledFunction | null = null;
        if (options.scheduledFunctionId !== undefined) {
          job = await getScheduled(tx, options.scheduledFunctionId);
          if (job?.state.kind !== 'pending') throw new SkipRun();
        }
        await options.hooks?.before?.(tx);
        const state = newTransactionState(tx, true, new ReadSet());
        state.limited = !info.module.startsWith('_system/');
        // For getSnapshotTs (on PostgreSQL it comes with the transaction's first statement).
        void this.trackSnapshot(tx, state);
        const execution = this.execution(info, state, args, options, logLines, seed);
        try {
          const result = this.checkReturn(
            info,
            await this.invoke(execution, info, args),
            tx.catalog(),
          );
          if (state.doomed !== null) throw state.doomed;
          Engine.closeStreams(state);
          if (key !== undefined) await recordOutcome(tx, key, result, logLines, nextCreationTime());
          if (job !== null) await settle(tx, job, { kind: 'success' }, Date.now());
          await options.hooks?.after?.(tx, result);
          return { json: result, replayedLogs: null };
        } catch (error) {
          if (state.doomed !== null) throw state.doomed;
          if (StorageError.is(error) && error.retryable) throw error;
          // Throwing rolls the transaction back: a failed mutation writes nothing.
          failure = asFunctionError(info.path, error);
          throw failure;
        }
      });
      if (value.json === null) {
        const tooBig = new FunctionError(
          FunctionErrorCode.Internal,
          `${info.path} was applied, but its result was too large to keep for a resend`,
        );
        return { ok: false, error: tooBig, logLines: value.replayedLogs ?? logLines };
      }
      return success(value.json, { ts: commit.ts, logLines: value.replayedLogs ?? logLines });
    } catch (error) {
      if (failure !== null && error === failure) return { ok: false, error: failure, logLines };
      if (error instanceof SkipRun) {
        const canceled = new FunctionError(
          FunctionErrorCode.Canceled,
          `${info.path} was not run: its job is no longer pending`,
        );
        return { ok: false, error: canceled, logLines };
      }
      throw error;
    }
  }

  /**
   * Pauses or resumes a pool (admin tools: HTTP API and CLI); resolves with whether it was
   * paused before. A pool that never had a job is refused.
   */
  setPoolPaused(pool: string, paused: boolean): Promise<boolean> {
    return writeWithRetry(this.store, (tx) => writePaused(tx, pool, paused));
  }

  /** A pool's dead letters, oldest first (admin tools: HTTP API and CLI). */
  failedPoolJobs(pool: string, limit = 100): Promise<FailedJob[]> {
    return this.store.read(async (tx) =>
      tx.catalog().table('_pool_jobs') === undefined ? [] : listFailed(tx, pool, limit),
    );
  }

  /** Runs a pool's dead letters again (the given ids, or the oldest up to `limit`). */
  async retryFailedPoolJobs(
    pool: string,
    ids: readonly string[] | null,
    limit = 1000,
  ): Promise<number> {
    return writeWithRetry(this.store, (tx) => retryFailed(tx, pool, ids, limit, Date.now()));
  }

  /**
   * Runs a page of a pool's dead letters again, each with everything downstream of it (through
   * its failed root when it has one); admin tools page through all of them with `next`.
   */
  retryFailedPoolJobsPage(
    pool: string,
    cursor: RetryCursor | null,
    limit: number,
  ): Promise<{ retried: number; skipped: SkippedJob[]; next: RetryCursor | null }> {
    return writeWithRetry(this.store, (tx) => retryFailedPage(tx, pool, cursor, limit, Date.now()));
  }

  /** The workpools that ever had a job (admin tools tell a mistyped pool from an empty one). */
  poolNames(): Promise<string[]> {
    return this.store.read(async (tx) => {
      if (tx.catalog().table('_pools') === undefined) return [];
      const entries = await tx.scan({
        table: '_pools',
        index: 'by_name',
        order: 'asc',
        limit: 10_000,
      });
      return entries.map((entry) => entry.document.name as string);
    });
  }

  /** Deletes mutation-log records older than `ageMs` (resends come within minutes). */
  sweepMutationLog(ageMs: number): Promise<number> {
    return sweepMutationLog(this.store, Date.now() - ageMs);
  }

  async action(path: string, args: JSONValue, options: CallOptions = {}): Promise<ActionOutcome> {
    const logLines: string[] = [];
    let info: FunctionInfo;
    try {
      info = this.registry.lookup(path, 'action', options.caller ?? 'client');
      this.checkArgs(info, args, this.store.catalog());
    } catch (error) {
      return { ok: false, error: asFunctionError(path, error), logLines };
    }
    const execution = this.execution(info, null, args, options, logLines);
    try {
      const json = this.checkReturn(
        info,
        await this.invoke(execution, info, args),
        this.store.catalog(),
      );
      return success(json, { logLines });
    } catch (error) {
      return { ok: false, error: asFunctionError(info.path, error), logLines };
    }
  }

  /** Runs any function by path: the kind comes from the function itself (admin tools, CLI). */
  async run(
    path: string,
    args: JSONValue,
    options: CallOptions = {},
  ): Promise<Result & { logLines: string[] }> {
    let info: FunctionInfo;
    try {
      info = this.registry.lookup(path, null, options.caller ?? 'client');
    } catch (error) {
      return { ok: false, error: asFunctionError(path, error), logLines: [] };
    }
    switch (info.kind) {
      case 'query':
        return this.query(path, args, options);
      case 'mutation':
        return this.mutation(path, args, options);
      case 'action':
        return this.action(path, args, options);
    }
  }

  // Calls between functions.

  async runNested(
    parent: Execution,
    kind: 'query' | 'mutation',
    path: string,
    args: JSONValue,
  ): Promise<string> {
    const state = parent.transaction!;
    const info = this.registry.lookup(path, kind, 'function');
    this.checkArgs(info, args, state.tx.catalog());
    const child: Execution = {
      ...parent,
      kind,
      path: info.path,
      visibility: info.visibility,
    };
    const call = async (): Promise<string> => {
      try {
        return this.checkReturn(
          info,
          await this.invoke(child, info, args, true),
          state.tx.catalog(),
        );
      } catch (error) {
        if (state.doomed !== null) throw state.doomed;
        const failure = asFunctionError(info.path, error);
        throw new CalledFunctionError(failure.message, failure.data);
      }
    };
    if (kind === 'query') return call();
    const tx = state.tx as WriteTransaction;
    const turn = state.nested.then(() => tx.subtransaction(call));
    state.nested = turn.catch(() => undefined);
    return turn;
  }

  async runFromAction(
    parent: Execution,
    kind: FunctionKind,
    path: string,
    args: JSONValue,
  ): Promise<string> {
    const options: CallOptions = {
      caller: 'function',
      identity: parent.identity,
      requestId: parent.requestId,
    };
    const outcome =
      kind === 'query'
        ? await this.query(path, args, options)
        : kind === 'mutation'
          ? await this.mutation(path, args, options)
          : await this.action(path, args, options);
    if (outcome.ok) return outcome.json;
    throw new CalledFunctionError(outcome.error.message, outcome.error.data);
  }
}
