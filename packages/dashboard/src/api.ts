/**
 * The admin-only `_system/*` functions the dashboard talks to, typed after CONTRACT.md.
 * Every reference is made with `makeFunctionReference`, so the app needs no generated code.
 */
import {
  makeFunctionReference,
  type DefaultFunctionArgs,
  type PaginationOptions,
  type PaginationResult,
} from 'convex/server';
import type { GenericId, Value, ValidatorJSON } from 'convex/values';

export type Doc = Record<string, Value> & { _id: GenericId<string>; _creationTime: number };

export interface TableInfo {
  name: string;
  documents: number;
  /** Optional while the server has not yet been updated to the contract. */
  indexes?: Array<{ name: string; fields: string[] }>;
  documentType?: ValidatorJSON | null;
}

export type DocumentFilter = {
  field: string;
  value: Value;
};

export type DocumentsArgs = {
  table: string;
  index?: string;
  order?: 'asc' | 'desc';
  filters?: DocumentFilter[];
  paginationOpts: PaginationOptions;
};

export type FunctionKind = 'query' | 'mutation' | 'action';

export interface FunctionInfo {
  path: string;
  kind: FunctionKind;
  visibility: 'public' | 'internal';
  args: ValidatorJSON;
  returns?: ValidatorJSON | null;
}

export type Outcome = 'success' | 'failure';

export interface Execution {
  id: string;
  startedAt: number;
  durationMs: number;
  path: string;
  kind: string;
  source: 'client' | 'scheduler' | 'pool';
  outcome: Outcome;
  error: string | null;
  logLines: string[];
}

export const SCHEDULE_STATES = ['pending', 'inProgress', 'success', 'failed', 'canceled'] as const;
export type ScheduleState = (typeof SCHEDULE_STATES)[number];

export interface Scheduled {
  _id: string;
  _creationTime: number;
  name: string;
  args: Value[];
  scheduledTime: number;
  completedTime?: number;
  state: { kind: ScheduleState; error?: string };
}

export interface Cron {
  name: string;
  function: string;
  schedule: Value;
  lastRun: number | null;
  nextRun: number;
}

export const JOB_STATES = [
  'waiting',
  'delayed',
  'pending',
  'running',
  'completing',
  'finished',
  'failed',
] as const;
export type JobState = (typeof JOB_STATES)[number];
/** States a job leaves no more (cancel makes no sense there). */
export const ENDED_STATES: readonly string[] = ['finished', 'failed'];

export interface PoolInfo {
  name: string;
  maxParallelism: number;
  /** Paused: none of its jobs start until it is resumed. */
  paused: boolean;
  counts: Partial<Record<JobState, number>>;
  /** Jobs executing now (`running` also counts jobs a runner claimed ahead, not started). */
  inUse: number;
}

export interface JobRow {
  id: string;
  name: string;
  fn: string;
  state: JobState;
  attempt: number;
  enqueuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  outcome: 'success' | 'failed' | 'canceled' | null;
  error: string | null;
}

export interface JobDetail {
  id: string;
  pool: string;
  name: string;
  fn: string;
  kind: string;
  state: JobState;
  attempt: number;
  maxAttempts: number | null;
  enqueuedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  due: number | null;
  priority: Value;
  group: Value;
  uniqueKey: Value;
  argsBytes: number;
  resultBytes: number | null;
  args: Value;
  result: { kind: string; returnValue?: Value; error?: string; reason?: string } | null;
  /** The latest failed attempts (older ones are dropped), each with its attempt number. */
  failures: Array<{ startedAt: number; endedAt: number; error: string; attempt?: number }>;
  dependsOn: string[];
  dependents: string[];
  /** Not in the contract; the server sends it (an onComplete handler's failure). */
  onCompleteError?: string | null;
}

export interface GraphNode {
  id: string;
  name: string;
  fn: string;
  state: JobState;
  outcome: 'success' | 'failed' | 'canceled' | null;
}

export interface JobGraph {
  nodes: GraphNode[];
  edges: Array<{ parent: string; child: string }>;
  truncated: boolean;
}

export interface StatPoint {
  t: number;
  started: number;
  succeeded: number;
  failed: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
}

export interface HealthStatus {
  version: string;
  driver: 'sqlite' | 'postgres';
  server: { id: string; startedAt: number };
  servers: Array<{
    id: string;
    host: string;
    pid: number;
    startedAt: number;
    self: boolean;
    /** A hash of the server's functions folder (null until it has loaded its code). */
    code: string | null;
  }>;
  commitsPerSecond: number;
  subscriptions: number;
  connections: number;
  jobLagMs: number;
  scheduledLagMs: number;
}

type Paginated<Args> = Args & { paginationOpts: PaginationOptions };

type AnyArgs = DefaultFunctionArgs;
const query = <Args extends AnyArgs, Result>(name: string) =>
  makeFunctionReference<'query', Args, Result>(name);
const mutation = <Args extends AnyArgs, Result>(name: string) =>
  makeFunctionReference<'mutation', Args, Result>(name);

export const api = {
  data: {
    tables: query<Record<string, never>, TableInfo[]>('_system/data:tables'),
    documents: query<DocumentsArgs, PaginationResult<Doc>>('_system/data:documents'),
    document: query<{ table: string; id: string }, Doc | null>('_system/data:document'),
    insert: mutation<{ table: string; document: Record<string, Value> }, string>(
      '_system/data:insert',
    ),
    replace: mutation<{ table: string; id: string; document: Record<string, Value> }, null>(
      '_system/data:replace',
    ),
    remove: mutation<{ table: string; ids: string[] }, number>('_system/data:remove'),
  },
  functions: {
    list: query<Record<string, never>, FunctionInfo[]>('_system/functions:list'),
  },
  logs: {
    recent: query<{ function?: string; outcome?: Outcome; limit?: number }, Execution[]>(
      '_system/logs:recent',
    ),
  },
  schedules: {
    list: query<Paginated<{ state: ScheduleState }>, PaginationResult<Scheduled>>(
      '_system/schedules:list',
    ),
    cancel: mutation<{ id: string }, null>('_system/schedules:cancel'),
    crons: query<Record<string, never>, Cron[]>('_system/schedules:crons'),
  },
  pools: {
    pools: query<Record<string, never>, PoolInfo[]>('_system/pools:pools'),
    jobs: query<
      Paginated<{ pool: string; state: JobState; name?: string }>,
      PaginationResult<JobRow>
    >('_system/pools:jobs'),
    job: query<{ id: string }, JobDetail | null>('_system/pools:job'),
    graph: query<{ id: string }, JobGraph>('_system/pools:graph'),
    cancel: mutation<{ ids: string[] }, number>('_system/pools:cancel'),
    setPaused: mutation<{ pool: string; paused: boolean }, boolean>('_system/pools:setPaused'),
    retry: mutation<{ ids: string[] }, number>('_system/pools:retry'),
    rerun: mutation<{ id: string }, number>('_system/pools:rerun'),
    stats: query<{ pool: string; seconds?: number }, StatPoint[]>('_system/pools:stats'),
  },
  health: {
    status: query<Record<string, never>, HealthStatus>('_system/health:status'),
  },
};
