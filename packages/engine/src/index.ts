export {
  Engine,
  type ActionOutcome,
  type CallOptions,
  type EngineOptions,
  type MutationOutcome,
  type QueryOutcome,
  type Result,
} from './engine.js';
export { FunctionError, FunctionErrorCode } from './errors.js';
export { describeThrown } from './outcomes.js';
export { LoadError, listModules } from './loader/bundle.js';
export { generateCode } from './loader/codegen.js';
export { documentMismatch, enforcedDocumentTypes } from './loader/schema.js';
export type { FunctionInfo } from './loader/registry.js';
export { canonicalFunctionPath, parseFunctionPath } from './paths.js';
export type { Caller, FunctionKind, UserIdentity } from './runtime/context.js';
export { setLogSink, type LogSink } from './runtime/console.js';
export { ReadSet, type KeyInterval } from './runtime/readset.js';
export { MAX_ARGS_NESTING, nestedDeeperThan, tooDeepMessage } from './runtime/nesting.js';
export { JobRunner, type JobRunnerOptions } from './jobs/runner.js';
export { SCHEDULED, type JobState, type ScheduledFunction } from './jobs/scheduled.js';
export type { FailedJob, SkippedJob } from './jobs/pool-graph.js';
export { Monitor } from './observe/monitor.js';
export type { ExecutionRecord } from './observe/execution-log.js';
export type { PoolSecond } from './observe/pool-stats.js';
export type { HealthReport } from './runtime/host.js';
export { LIVE_FIGURES } from './system/functions.js';
