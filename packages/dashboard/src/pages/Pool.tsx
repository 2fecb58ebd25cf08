import { useMutation, usePaginatedQuery } from 'convex/react';
import { createColumnHelper } from '@tanstack/react-table';
import { useMemo, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api, ENDED_STATES, JOB_STATES, type JobRow, type JobState, type StatPoint } from '../api';
import { Chart } from '../components/Chart';
import { DataTable } from '../components/DataTable';
import { ErrorBoundary } from '../components/ErrorBoundary';
import {
  ActionStatus,
  ErrorText,
  Field,
  LiveView,
  Loading,
  LoadMore,
  PageHeader,
  StateBadge,
} from '../components/ui';
import { counted, formatCount, formatDuration, formatTime } from '../format';
import { useAction, useDebounced, useLive } from '../hooks';
import { PoolCard } from './Pools';

const PAGE = 25;
const WINDOWS = [
  { seconds: 60, label: 'last minute' },
  { seconds: 300, label: 'last 5 minutes' },
  { seconds: 900, label: 'last 15 minutes' },
];

/** `/pools/:pool`: the pool's card, its throughput and latency charts, and its jobs. */
export function PoolPage() {
  const { pool = '' } = useParams();
  const pools = useLive(api.pools.pools, {});
  return (
    <section data-testid="page-pools">
      <title>{`${pool} · Pools · Sleigh`}</title>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/pools">Pools</Link> / <span>{pool}</span>
      </nav>
      <PageHeader title={pool} />
      <LiveView live={pools} what="the pool">
        {(list) => {
          const info = list.find((candidate) => candidate.name === pool);
          return info === undefined ? (
            <ErrorText error={`There is no pool named "${pool}"`} />
          ) : (
            <>
              <PoolCard pool={info} />
              <PauseControl pool={info.name} paused={info.paused} />
            </>
          );
        }}
      </LiveView>
      <Stats pool={pool} />
      <Jobs
        pool={pool}
        counts={
          pools.status === 'ready' ? pools.data.find((p) => p.name === pool)?.counts : undefined
        }
      />
    </section>
  );
}

/** Pauses a pool (nothing starts; what runs finishes) or resumes it. */
function PauseControl({ pool, paused }: { pool: string; paused: boolean }) {
  const setPaused = useMutation(api.pools.setPaused);
  const [action, run] = useAction();
  return (
    <div className="pause-control">
      <button
        type="button"
        className={paused ? 'small' : 'small danger'}
        disabled={action.busy}
        onClick={() =>
          run(
            () => setPaused({ pool, paused: !paused }),
            () =>
              paused
                ? `Resumed ${pool}: its jobs start again`
                : `Paused ${pool}: no job starts until it is resumed; running jobs finish`,
          )
        }
      >
        {paused ? 'Resume pool' : 'Pause pool'}
      </button>
      <ActionStatus error={action.error} message={action.message} />
    </div>
  );
}

function series(
  points: StatPoint[],
  pick: (point: StatPoint) => number | null,
): Array<number | null> {
  return points.map(pick);
}

function Stats({ pool }: { pool: string }) {
  const [seconds, setSeconds] = useState(300);
  const stats = useLive(api.pools.stats, seconds === 300 ? { pool } : { pool, seconds });
  const colors = {
    started: 'var(--chart-blue)',
    succeeded: 'var(--chart-green)',
    failed: 'var(--chart-red)',
    p50: 'var(--chart-blue)',
    p99: 'var(--chart-orange)',
  };
  const resolved = useResolvedColors(colors);

  return (
    <section className="stats" aria-label="Throughput and latency">
      <div className="row spread">
        <h2>Throughput and latency</h2>
        <Field label="Window" inline>
          <select value={seconds} onChange={(event) => setSeconds(Number(event.target.value))}>
            {WINDOWS.map((window) => (
              <option key={window.seconds} value={window.seconds}>
                {window.label}
              </option>
            ))}
          </select>
        </Field>
      </div>
      {stats.status === 'loading' && <Loading what="Loading stats" />}
      {stats.status === 'error' && <ErrorText error={stats.error} title="Could not load stats" />}
      {stats.status === 'ready' && (
        <div className="charts">
          <Chart
            title="Throughput (jobs per second)"
            testId="chart-throughput"
            series={[
              { label: 'started', color: resolved.started },
              { label: 'succeeded', color: resolved.succeeded },
              { label: 'failed', color: resolved.failed },
            ]}
            times={stats.data.map((point) => point.t)}
            values={[
              series(stats.data, (point) => point.started),
              series(stats.data, (point) => point.succeeded),
              series(stats.data, (point) => point.failed),
            ]}
            summary={summary(stats.data, [
              ['started', (point) => point.started, '/s'],
              ['succeeded', (point) => point.succeeded, '/s'],
              ['failed', (point) => point.failed, '/s'],
            ])}
          />
          <Chart
            title="Latency, enqueue to start"
            testId="chart-latency"
            series={[
              { label: 'p50', color: resolved.p50, unit: ' ms', points: true },
              { label: 'p99', color: resolved.p99, unit: ' ms', points: true },
            ]}
            times={stats.data.map((point) => point.t)}
            values={[
              series(stats.data, (point) => point.latencyP50Ms),
              series(stats.data, (point) => point.latencyP99Ms),
            ]}
            summary={summary(stats.data, [
              ['p50', (point) => point.latencyP50Ms, ' ms'],
              ['p99', (point) => point.latencyP99Ms, ' ms'],
            ])}
          />
        </div>
      )}
    </section>
  );
}

/** The latest second's figures, as a sentence (what a screen reader hears for a chart). */
function summary(
  points: StatPoint[],
  picks: Array<[string, (point: StatPoint) => number | null, string]>,
): string {
  const last = points[points.length - 1];
  if (last === undefined) return 'no data yet';
  return `at ${formatTime(last.t)}: ${picks
    .map(([label, pick, unit]) => {
      const value = pick(last);
      return `${label} ${value === null ? 'none' : `${Math.round(value * 10) / 10}${unit}`}`;
    })
    .join(', ')}`;
}

/** Canvas needs real colours: CSS variables are read once from the document. */
function useResolvedColors<K extends string>(colors: Record<K, string>): Record<K, string> {
  return useMemo(() => {
    const style = getComputedStyle(document.documentElement);
    const out = {} as Record<K, string>;
    for (const [key, value] of Object.entries(colors) as Array<[K, string]>) {
      const match = /^var\((--[\w-]+)\)$/.exec(value);
      out[key] =
        match?.[1] !== undefined ? style.getPropertyValue(match[1]).trim() || '#888' : value;
    }
    return out;
    // The palette is fixed for the page's life.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
}

function Jobs({
  pool,
  counts,
}: {
  pool: string;
  counts: Partial<Record<JobState, number>> | undefined;
}) {
  const [params, setParams] = useSearchParams();
  const raw = params.get('state');
  const state: JobState = (JOB_STATES as readonly string[]).includes(raw ?? '')
    ? (raw as JobState)
    : 'running';
  const [name, setName] = useState(params.get('name') ?? '');
  const settled = useDebounced(name.trim(), 300);
  const args = settled === '' ? { pool, state } : { pool, state, name: settled };

  const update = (next: { state?: JobState; name?: string }) => {
    const out = new URLSearchParams(params);
    if (next.state !== undefined) out.set('state', next.state);
    if (next.name !== undefined) {
      if (next.name === '') out.delete('name');
      else out.set('name', next.name);
    }
    setParams(out, { replace: true });
  };

  return (
    <section aria-label="Jobs">
      <h2>Jobs</h2>
      <form
        className="toolbar"
        aria-label="Job filters"
        onSubmit={(event) => event.preventDefault()}
      >
        <Field label="State">
          <select
            value={state}
            onChange={(event) => update({ state: event.target.value as JobState })}
          >
            {JOB_STATES.map((candidate) => (
              <option key={candidate} value={candidate}>
                {candidate}
                {counts !== undefined ? ` (${formatCount(counts[candidate] ?? 0)})` : ''}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Job name">
          <input
            type="search"
            value={name}
            placeholder="exact name"
            onChange={(event) => {
              setName(event.target.value);
              update({ name: event.target.value.trim() });
            }}
          />
        </Field>
      </form>
      <ErrorBoundary resetKey={JSON.stringify(args)} title="Could not load jobs">
        <JobList key={JSON.stringify(args)} args={args} />
      </ErrorBoundary>
    </section>
  );
}

const column = createColumnHelper<JobRow>();

function JobList({ args }: { args: { pool: string; state: JobState; name?: string } }) {
  const { results, status, loadMore } = usePaginatedQuery(api.pools.jobs, args, {
    initialNumItems: PAGE,
  });
  const cancel = useMutation(api.pools.cancel);
  const retry = useMutation(api.pools.retry);
  const [action, run] = useAction();

  const columns = useMemo(
    () => [
      column.accessor('name', {
        header: 'Name',
        cell: (cell) => (
          <Link to={`/jobs/${encodeURIComponent(cell.row.original.id)}`}>{cell.getValue()}</Link>
        ),
      }),
      column.accessor('fn', {
        header: 'Function',
        cell: (cell) => <span className="mono">{cell.getValue()}</span>,
      }),
      column.accessor('state', {
        header: 'State',
        cell: (cell) => <StateBadge state={cell.getValue()} />,
      }),
      column.accessor('outcome', {
        header: 'Outcome',
        cell: (cell) => <StateBadge state={cell.getValue()} />,
      }),
      column.accessor('attempt', {
        header: 'Attempt',
        cell: (cell) => <span className="num">{cell.getValue()}</span>,
      }),
      column.accessor('enqueuedAt', {
        header: 'Enqueued',
        cell: (cell) => formatTime(cell.getValue()),
      }),
      column.accessor((job) => (job.startedAt === null ? null : job.startedAt - job.enqueuedAt), {
        id: 'wait',
        header: 'Waited',
        cell: (cell) => <span className="num">{formatDuration(cell.getValue())}</span>,
      }),
      column.accessor(
        (job) =>
          job.startedAt === null || job.finishedAt === null ? null : job.finishedAt - job.startedAt,
        {
          id: 'ran',
          header: 'Ran',
          cell: (cell) => <span className="num">{formatDuration(cell.getValue())}</span>,
        },
      ),
      column.accessor('error', {
        header: 'Error',
        cell: (cell) => {
          const error = cell.getValue();
          return error === null ? null : (
            <span className="error-inline" title={error}>
              {error.length > 80 ? `${error.slice(0, 79)}…` : error}
            </span>
          );
        },
      }),
      column.display({
        id: 'actions',
        header: () => <span className="visually-hidden">Actions</span>,
        cell: (cell) => {
          const job = cell.row.original;
          if (job.state === 'failed') {
            return (
              <button
                type="button"
                className="small"
                disabled={action.busy}
                aria-label={`Retry job ${job.name} (${job.id})`}
                onClick={() =>
                  run(
                    () => retry({ ids: [job.id] }),
                    (n) => `Retried ${counted(n, 'job')}`,
                  )
                }
              >
                Retry
              </button>
            );
          }
          if (ENDED_STATES.includes(job.state)) return null;
          return (
            <button
              type="button"
              className="small danger"
              disabled={action.busy}
              aria-label={`Cancel job ${job.name} (${job.id})`}
              onClick={() =>
                run(
                  () => cancel({ ids: [job.id] }),
                  (n) => `Canceled ${counted(n, 'job')}`,
                )
              }
            >
              Cancel
            </button>
          );
        },
      }),
    ],
    [action.busy, cancel, retry, run],
  );

  return (
    <>
      <ActionStatus error={action.error} message={action.message} />
      <DataTable
        label={`Jobs of ${args.pool}: ${args.state}`}
        testId="jobs"
        data={results}
        columns={columns}
        getRowId={(job) => job.id}
        rowProps={(job) => ({ 'data-state': job.state, 'data-job-id': job.id })}
        empty={
          status === 'LoadingFirstPage'
            ? 'Loading jobs…'
            : `No ${args.state} jobs${args.name !== undefined ? ` named "${args.name}"` : ''}.`
        }
      />
      <div className="row pager">
        <span className="muted" role="status">
          {status === 'LoadingFirstPage' ? 'Loading…' : `${counted(results.length, 'job')} shown`}
        </span>
        <LoadMore status={status} loadMore={() => loadMore(PAGE)} />
      </div>
    </>
  );
}
