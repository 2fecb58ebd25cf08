/**
 * `GET /metrics`: the Health page's figures in Prometheus' text format, for operators (admin
 * key as `Authorization: Bearer <key>`, which Prometheus' `authorization` setting sends).
 * Each scrape builds a fresh registry from the engine's monitor and the same `_system/`
 * queries the dashboard reads, so the two never disagree. prom-client writes the format.
 */
import type { Engine } from '@sleigh/engine';
import { Counter, Gauge, Registry } from 'prom-client';

interface PoolRow {
  name: string;
  maxParallelism: number;
  paused: boolean;
  counts: Record<string, number>;
}

interface Status {
  version: string;
  servers: unknown[];
  subscriptions: number;
  connections: number;
  jobLagMs: number;
  scheduledLagMs: number;
}

async function admin<T>(engine: Engine, path: string): Promise<T> {
  const outcome = await engine.query(path, {}, { caller: 'admin' });
  if (!outcome.ok) throw new Error(`${path} failed: ${outcome.error.message}`);
  return JSON.parse(outcome.json) as T;
}

export async function renderMetrics(
  engine: Engine,
): Promise<{ contentType: string; body: string }> {
  const [status, pools] = await Promise.all([
    admin<Status>(engine, '_system/health:status'),
    admin<PoolRow[]>(engine, '_system/pools:pools'),
  ]);
  const monitor = engine.monitor;
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [registry] });

  gauge('sleigh_info', 'Sleigh version and storage driver', ['version', 'driver']).set(
    { version: status.version, driver: engine.store.driver },
    1,
  );
  gauge('sleigh_start_time_seconds', 'When this server started').set(monitor.startedAt / 1000);
  gauge('sleigh_servers', 'Sleigh servers using the database').set(status.servers.length);
  gauge(
    'sleigh_functions_left_to_other_servers',
    'Functions another live server has that this one lacks or has with other validators (above 0 during a rollout: this server leaves their jobs to the servers that run them as enqueued)',
  ).set(engine.functionsLeftToOthers());
  counter('sleigh_commits_total', 'Commits this server heard of (all servers on the database)').inc(
    monitor.commits,
  );
  gauge('sleigh_commits_per_second', 'Commit rate over the last ten seconds').set(
    monitor.commitsPerSecond(),
  );
  counter(
    'sleigh_mutation_conflicts_total',
    'Mutation attempts on this server that lost a race to a concurrent transaction and ran again',
  ).inc(monitor.conflicts);
  counter(
    'sleigh_mutation_first_attempts_queued_total',
    'Mutations whose first attempt waited its turn behind retries, because most first attempts of its function were conflicting',
  ).inc(monitor.queuedFirstAttempts);
  gauge('sleigh_subscriptions', 'Query subscriptions of connected clients').set(
    status.subscriptions,
  );
  gauge('sleigh_connections', 'Connected sync-protocol clients').set(status.connections);
  const executions = counter(
    'sleigh_function_executions_total',
    'Function executions on this server',
    ['kind', 'outcome'],
  );
  for (const [key, count] of monitor.executions.totals) {
    const [kind = '', outcome = ''] = key.split(' ');
    executions.inc({ kind, outcome }, count);
  }
  gauge('sleigh_job_lag_seconds', 'How long the oldest ready pool job has waited').set(
    status.jobLagMs / 1000,
  );
  gauge(
    'sleigh_scheduled_lag_seconds',
    'How long the oldest due scheduled function has waited',
  ).set(status.scheduledLagMs / 1000);
  const jobs = gauge('sleigh_pool_jobs', 'Pool jobs by state (capped at 10,000)', [
    'pool',
    'state',
  ]);
  const parallelism = gauge('sleigh_pool_max_parallelism', 'A pool’s maxParallelism', ['pool']);
  const paused = gauge('sleigh_pool_paused', '1 while a pool is paused (nothing of it starts)', [
    'pool',
  ]);
  for (const pool of pools) {
    parallelism.set({ pool: pool.name }, pool.maxParallelism);
    paused.set({ pool: pool.name }, pool.paused ? 1 : 0);
    for (const [state, count] of Object.entries(pool.counts)) {
      jobs.set({ pool: pool.name, state }, count);
    }
  }
  const started = counter('sleigh_pool_jobs_started_total', 'Pool jobs started here', ['pool']);
  const ended = counter('sleigh_pool_jobs_ended_total', 'Pool job attempts ended here', [
    'pool',
    'outcome',
  ]);
  for (const [pool, totals] of monitor.pools.totals) {
    started.inc({ pool }, totals.started);
    ended.inc({ pool, outcome: 'success' }, totals.succeeded);
    ended.inc({ pool, outcome: 'failure' }, totals.failed);
  }
  return { contentType: registry.contentType, body: await registry.metrics() };
}
