/**
 * The global `Convex` object that `convex/server` calls: `syscall` (synchronous),
 * `asyncSyscall` and `jsSyscall`. Each op is routed to the execution that issued it
 * (AsyncLocalStorage) and handled outside the user's context, so Sleigh's own timers and I/O
 * are never mistaken for the user's.
 *
 * Arguments and results are JSON strings of Convex-encoded values (PROTOCOL.md §1).
 */
import { BY_CREATION_TIME, BY_ID, documentJson, StorageError } from '@sleigh/storage';
import { convexToJson, type JSONValue } from 'convex/values';
import { FunctionErrorCode, SyscallError } from '../errors.js';
import { tooFarOff } from '../jobs/timers.js';
import {
  countRead,
  executions,
  TRANSACTION_LIMITS,
  type Execution,
  type FunctionKind,
  type TransactionState,
} from './context.js';
import * as db from './database.js';
import { visibleJson } from './hidden-fields.js';
import { QueryStream, queryPage, type SerializedQuery } from './query-stream.js';

type Args = Record<string, unknown>;
type SyncHandler = (execution: Execution, args: Args) => JSONValue;
/** A handler returns a value to encode, or JSON text it already has (documents, mostly). */
type AsyncHandler = (execution: Execution, args: Args) => Promise<JSONValue | RawJson>;

class RawJson {
  constructor(readonly text: string) {}
}

function notSupported(feature: string, issue?: string): () => never {
  return () => {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `${feature} is not supported by Sleigh yet${issue === undefined ? '' : ` (${issue})`}`,
    );
  };
}

function transaction(execution: Execution, operation: string) {
  if (execution.transaction === null) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `${operation} is only available in queries and mutations, not in an action (${execution.path})`,
    );
  }
  return execution.transaction;
}

/** The function a `run*` syscall names: `{ name }` is supported; components are not. */
function calledPath(args: Args): string {
  if (typeof args.name === 'string') return args.name;
  if (typeof args.functionHandle === 'string') {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      'Function handles are not supported by Sleigh yet',
    );
  }
  throw new SyscallError(
    FunctionErrorCode.Forbidden,
    'Component functions are not supported by Sleigh',
  );
}

const SYNC: Record<string, SyncHandler> = {
  '1.0/queryStream': (execution, args) => {
    const state = transaction(execution, 'ctx.db.query');
    const stream = new QueryStream(state, args.query as SerializedQuery);
    const queryId = state.nextStreamId++;
    state.streams.set(queryId, stream);
    state.metrics.databaseQueries++;
    return { queryId };
  },
  '1.0/queryCleanup': (execution, args) => {
    const state = transaction(execution, 'ctx.db.query');
    const id = args.queryId as number;
    state.streams.get(id)?.close();
    state.streams.delete(id);
    return null;
  },
  '1.0/db/normalizeId': (execution, args) =>
    db.normalizeId(execution, args as { table: string; idString: string }),
  '1.0/getSnapshotTs': (execution) => {
    const state = transaction(execution, 'ctx.meta.getSnapshotTs()');
    if (state.snapshotTs === null) {
      throw new SyscallError(
        FunctionErrorCode.Internal,
        'getSnapshotTs() was called before the snapshot was taken; read something first',
      );
    }
    return convexToJson(state.snapshotTs);
  },
};

const ASYNC: Record<string, AsyncHandler> = {
  '1.0/get': async (execution, args) => {
    const found = await db.get(execution, args as Parameters<typeof db.get>[1]);
    if (found === null) return null;
    const json = visibleJson(found.table, documentJson(found.document));
    countRead(transaction(execution, 'ctx.db.get'), 0, json.length);
    return new RawJson(json);
  },
  '1.0/insert': (execution, args) =>
    db.insert(execution.host, execution, args as Parameters<typeof db.insert>[2]),
  '1.0/shallowMerge': (execution, args) =>
    db.patch(execution.host, execution, args as Parameters<typeof db.patch>[2]),
  '1.0/replace': (execution, args) =>
    db.replace(execution.host, execution, args as Parameters<typeof db.replace>[2]),
  '1.0/remove': (execution, args) => db.remove(execution, args as Parameters<typeof db.remove>[1]),
  '1.0/count': (execution, args) => db.count(execution, args as { table: string }),
  '1.0/queryStreamNext': async (execution, args) => {
    const state = transaction(execution, 'ctx.db.query');
    const stream = state.streams.get(args.queryId as number);
    if (stream === undefined) throw new Error(`Query ${String(args.queryId)} is closed`);
    const entry = await stream.next();
    if (entry === null) {
      state.streams.delete(args.queryId as number);
      return { value: null, done: true };
    }
    const json = visibleJson(stream.table, entry.json());
    countRead(state, 1, json.length);
    return new RawJson(`{"value":${json},"done":false}`);
  },
  '1.0/queryPage': async (execution, args) => {
    const state = transaction(execution, 'paginate()');
    state.metrics.databaseQueries++;
    // The first paginate() of a subscribed query ends where its page ended before (journal).
    const journal = state.journal;
    const first = !journal.paginated;
    journal.paginated = true;
    const endCursor = (args.endCursor as string | null | undefined) ?? null;
    const pinnedEnd = first && endCursor === null ? journal.pinnedEnd : null;
    const result = await queryPage(state, {
      query: args.query as SerializedQuery,
      cursor: (args.cursor as string | null | undefined) ?? null,
      endCursor: endCursor ?? pinnedEnd,
      endFromJournal: pinnedEnd !== null,
      pageSize: args.pageSize as number,
      maximumRowsRead: (args.maximumRowsRead as number | null | undefined) ?? null,
    });
    if (first) journal.end = result.continueCursor;
    const page = result.page.map((entry) => visibleJson(result.table, entry.json())).join(',');
    countRead(state, result.page.length, page.length);
    return new RawJson(
      `{"page":[${page}],"isDone":${result.isDone},"continueCursor":${JSON.stringify(result.continueCursor)},"splitCursor":${JSON.stringify(result.splitCursor)},"pageStatus":null}`,
    );
  },
  '1.0/runUdf': (execution, args) => {
    const udfType = args.udfType as string;
    const kind = udfType === 'mutation' ? 'mutation' : 'query';
    if (kind === 'mutation' && execution.kind !== 'mutation') {
      throw new SyscallError(
        FunctionErrorCode.Forbidden,
        `ctx.runMutation is not allowed in a ${execution.kind} (${execution.path})`,
      );
    }
    return execution.host
      .runNested(execution, kind, calledPath(args), args.args as JSONValue)
      .then((json) => new RawJson(json));
  },
  '1.0/actions/query': (execution, args) => fromAction(execution, 'query', args),
  '1.0/actions/mutation': (execution, args) => fromAction(execution, 'mutation', args),
  '1.0/actions/action': (execution, args) => fromAction(execution, 'action', args),
  '1.0/getUserIdentity': async (execution) =>
    execution.identity === null ? null : (execution.identity as unknown as JSONValue),
  '1.0/getFunctionMetadata': async (execution) => ({ name: execution.path, componentPath: '' }),
  '1.0/getDeploymentMetadata': async (execution) => ({
    name: execution.host.deploymentName,
    region: null,
    class: 's16',
  }),
  '1.0/getRequestMetadata': async (execution) => ({
    ip: null,
    userAgent: null,
    requestId: execution.requestId,
    scheduledFunctionId: execution.scheduledFunctionId,
    authToken: null,
  }),
  '1.0/getTransactionMetrics': async (execution) => {
    const { metrics } = transaction(execution, 'getTransactionMetrics()');
    const metric = (used: number, limit: number) => ({
      used,
      remaining: Math.max(0, limit - used),
    });
    return {
      bytesRead: metric(metrics.bytesRead, TRANSACTION_LIMITS.bytesRead),
      bytesWritten: metric(metrics.bytesWritten, TRANSACTION_LIMITS.bytesWritten),
      databaseQueries: metric(metrics.databaseQueries, 4096),
      documentsRead: metric(metrics.documentsRead, TRANSACTION_LIMITS.documentsRead),
      documentsWritten: metric(metrics.documentsWritten, TRANSACTION_LIMITS.documentsWritten),
      functionsScheduled: metric(metrics.functionsScheduled, 1000),
      scheduledFunctionArgsBytes: metric(
        metrics.scheduledFunctionArgsBytes,
        TRANSACTION_LIMITS.scheduledFunctionArgsBytes,
      ),
      filesWritten: metric(0, 0),
      fileWriteBytes: metric(0, 0),
      filesRead: metric(0, 0),
      fileReadBytes: metric(0, 0),
    };
  },
  '1.0/schedule': (execution, args) => schedule(execution, args),
  '1.0/actions/schedule': (execution, args) => schedule(execution, args),
  '1.0/cancel_job': (execution, args) => cancel(execution, args),
  '1.0/actions/cancel_job': (execution, args) => cancel(execution, args),
  // Workpools (@sleigh/workpool): see jobs/pool-service.ts.
  'sleigh/pool/enqueue': (execution, args) =>
    execution.host.pools.enqueue(execution, args.pool, args.options, args.items),
  'sleigh/pool/status': async (execution, args) =>
    await execution.host.pools.status(execution, args.ids),
  'sleigh/pool/result': (execution, args) => execution.host.pools.result(execution, args.id),
  'sleigh/pool/cancel': (execution, args) =>
    execution.host.pools.cancel(execution, args.ids, args.pool),
  'sleigh/pool/cancelAll': (execution, args) =>
    execution.host.pools.cancelAll(execution, args.pool, args.limit),
  'sleigh/pool/setPaused': (execution, args) =>
    execution.host.pools.setPaused(execution, args.pool, args.options ?? null, args.paused),
  'sleigh/pool/wait': (execution, args) =>
    execution.host.pools.wait(execution, args.id, args.timeoutMs),
  'sleigh/pool/rerun': (execution, args) => execution.host.pools.rerun(execution, args.id),
  'sleigh/pool/dependencies': (execution) => execution.host.pools.dependencies(execution),
  // Sleigh's own functions (system/functions.ts) only.
  'sleigh/system/tables': async (execution) => {
    const state = systemOnly(execution);
    state.readSet.catalogDependent = true;
    const catalog = state.tx.catalog();
    return catalog
      .tables()
      .map((table) => table.name)
      .filter((name) => !name.startsWith('_'))
      .sort()
      .map((name) => ({
        name,
        // The built-in order first, then the schema's indexes (fields as declared).
        indexes: catalog
          .indexes(name)
          .filter((index) => index.name !== BY_ID)
          .map((index) => ({
            name: index.name,
            fields:
              index.name === BY_CREATION_TIME
                ? ['_creationTime']
                : index.fields.filter((field) => field !== '_creationTime' && field !== '_id'),
          }))
          .sort(
            (a, b) =>
              Number(b.name === BY_CREATION_TIME) - Number(a.name === BY_CREATION_TIME) ||
              a.name.localeCompare(b.name),
          ),
        documentType: execution.host.documentValidator(name),
      }));
  },
  'sleigh/system/functions': async (execution) => {
    systemOnly(execution);
    return execution.host.appFunctions();
  },
  'sleigh/system/logs': async (execution, args) => {
    systemOnly(execution);
    return execution.host.monitor.executions.recent({
      function: optionalString(args.function),
      outcome: args.outcome === 'success' || args.outcome === 'failure' ? args.outcome : undefined,
      limit: typeof args.limit === 'number' ? args.limit : undefined,
    }) as unknown as JSONValue;
  },
  'sleigh/system/poolStats': async (execution, args) => {
    systemOnly(execution);
    return execution.host.monitor.pools.series(
      String(args.pool),
      typeof args.seconds === 'number' ? args.seconds : 300,
    ) as unknown as JSONValue;
  },
  'sleigh/system/health': async (execution) => {
    systemOnly(execution);
    return (await execution.host.health()) as unknown as JSONValue;
  },
  'sleigh/pool/heartbeat': async (execution) => execution.host.pools.heartbeat(execution),
  'sleigh/pool/whenAborted': (execution) => execution.host.pools.whenAborted(execution),
  'sleigh/pool/failed': (execution, args) =>
    execution.host.pools.failed(execution, args.pool, args.limit),
  'sleigh/pool/retryFailed': (execution, args) =>
    execution.host.pools.retryFailed(execution, args.pool, args.ids, args.limit),
  '1.0/signJwt': notSupported('ctx.auth.signJwt'),
  '1.0/createFunctionHandle': notSupported('createFunctionHandle'),
  '1.0/actions/vectorSearch': notSupported('Vector search'),
  '1.0/storageGenerateUploadUrl': notSupported('File storage'),
  '1.0/storageGetUrl': notSupported('File storage'),
  '1.0/storageGetMetadata': notSupported('File storage'),
  '1.0/storageDelete': notSupported('File storage'),
  '1.0/storageStore': notSupported('File storage'),
  '1.0/storageGet': notSupported('File storage'),
};

async function schedule(execution: Execution, args: Args): Promise<JSONValue> {
  if (execution.kind === 'query') {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.scheduler is not available in a query (${execution.path}): schedule from a mutation or an action`,
    );
  }
  const path = calledPath(args);
  const ts = args.ts;
  if (typeof ts !== 'number' || !Number.isFinite(ts)) {
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      `ctx.scheduler: the time to run ${path} must be a finite number`,
    );
  }
  const far = tooFarOff(ts * 1000);
  if (far !== null) {
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      `ctx.scheduler: cannot run ${path} at ${far}: runs are scheduled within 5 years of now`,
    );
  }
  return execution.host.schedule(execution, path, (args.args ?? {}) as JSONValue, ts * 1000);
}

async function cancel(execution: Execution, args: Args): Promise<JSONValue> {
  if (execution.kind === 'query') {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `ctx.scheduler.cancel is not available in a query (${execution.path})`,
    );
  }
  const id = args.id;
  if (typeof id !== 'string') {
    throw new SyscallError(
      FunctionErrorCode.InvalidArguments,
      'ctx.scheduler.cancel: the id must be a string',
    );
  }
  await execution.host.cancelScheduled(execution, id);
  return null;
}

async function fromAction(execution: Execution, kind: FunctionKind, args: Args): Promise<RawJson> {
  if (execution.kind !== 'action') {
    throw new SyscallError(FunctionErrorCode.Forbidden, `This call is only available in actions`);
  }
  return new RawJson(
    await execution.host.runFromAction(execution, kind, calledPath(args), args.args as JSONValue),
  );
}

function requireExecution(op: string): Execution {
  const execution = executions.getStore();
  if (execution === undefined) {
    throw new Error(
      `The Convex syscall ${op} was made outside of a function run by Sleigh (a database or auth object used outside its function?)`,
    );
  }
  return execution;
}

/** A retryable storage failure dooms the transaction, even if the user's code catches it. */
function noteFailure(execution: Execution, error: unknown): void {
  if (StorageError.is(error) && error.retryable && execution.transaction !== null) {
    execution.transaction.doomed ??= error;
  }
}

let installed = false;

export function installSyscalls(): void {
  if (installed) return;
  installed = true;
  (globalThis as Record<string, unknown>).Convex = {
    syscall(op: string, json: string): string {
      const execution = requireExecution(op);
      const handler = SYNC[op];
      if (handler === undefined) {
        throw new Error(
          ASYNC[op] !== undefined ? `Syscall ${op} is asynchronous` : `Unknown syscall ${op}`,
        );
      }
      return JSON.stringify(handler(execution, JSON.parse(json) as Args));
    },
    async asyncSyscall(op: string, json: string): Promise<string> {
      const execution = requireExecution(op);
      const handler = ASYNC[op];
      if (handler === undefined) throw new Error(`Unknown async syscall ${op}`);
      const args = JSON.parse(json) as Args;
      try {
        // Run outside the user's context: Sleigh's own timers and I/O are not the user's.
        // (run with no store rather than exit(): on Node 20, exit() rebuilds the async hooks.)
        const result = await executions.run(undefined as unknown as Execution, () =>
          handler(execution, args),
        );
        return result instanceof RawJson ? result.text : JSON.stringify(result);
      } catch (error) {
        noteFailure(execution, error);
        throw error;
      }
    },
    jsSyscall(op: string): never {
      throw new Error(`Syscall ${op} is not supported by Sleigh`);
    },
  };
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The transaction of one of Sleigh's own `_system/` queries; refuses everyone else. */
function systemOnly(execution: Execution): TransactionState {
  if (!execution.path.startsWith('_system/') || execution.transaction === null) {
    throw new SyscallError(
      FunctionErrorCode.Forbidden,
      `sleigh/system syscalls are for Sleigh's own functions, not ${execution.path}`,
    );
  }
  return execution.transaction;
}
