import { useMutation, usePaginatedQuery } from 'convex/react';
import { createColumnHelper } from '@tanstack/react-table';
import { useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, SCHEDULE_STATES, type Cron, type Scheduled, type ScheduleState } from '../api';
import { DataTable } from '../components/DataTable';
import { ErrorBoundary } from '../components/ErrorBoundary';
import { ActionStatus, LiveView, LoadMore, PageHeader, StateBadge } from '../components/ui';
import { formatRelative, formatTime, jsonShort } from '../format';
import { useAction, useLive, useNow } from '../hooks';

const PAGE = 25;

/** `/schedules`: scheduled functions by state (with Cancel on pending ones) and the crons. */
export function SchedulesPage() {
  const [params, setParams] = useSearchParams();
  const raw = params.get('state');
  const state: ScheduleState = (SCHEDULE_STATES as readonly string[]).includes(raw ?? '')
    ? (raw as ScheduleState)
    : 'pending';

  return (
    <section data-testid="page-schedules">
      <title>Schedules · Sleigh</title>
      <PageHeader title="Schedules" />
      <h2>Scheduled functions</h2>
      <div className="segmented" role="group" aria-label="State">
        {SCHEDULE_STATES.map((candidate) => (
          <button
            key={candidate}
            type="button"
            aria-pressed={candidate === state}
            onClick={() =>
              setParams(candidate === 'pending' ? {} : { state: candidate }, { replace: true })
            }
          >
            {candidate}
          </button>
        ))}
      </div>
      <ErrorBoundary resetKey={state} title="Could not load scheduled functions">
        <ScheduledList key={state} state={state} />
      </ErrorBoundary>
      <h2>Crons</h2>
      <Crons />
    </section>
  );
}

const scheduledColumn = createColumnHelper<Scheduled>();

function ScheduledList({ state }: { state: ScheduleState }) {
  const { results, status, loadMore } = usePaginatedQuery(
    api.schedules.list,
    { state },
    { initialNumItems: PAGE },
  );
  const cancel = useMutation(api.schedules.cancel);
  const [action, run] = useAction();
  const now = useNow();

  const columns = useMemo(
    () => [
      scheduledColumn.accessor('name', {
        header: 'Function',
        cell: (cell) => (
          <Link className="mono" to={`/functions/${cell.getValue()}`}>
            {cell.getValue()}
          </Link>
        ),
      }),
      scheduledColumn.accessor('args', {
        header: 'Args',
        cell: (cell) => <span className="mono">{jsonShort(cell.getValue(), 60)}</span>,
      }),
      scheduledColumn.accessor('scheduledTime', {
        header: 'Scheduled for',
        cell: (cell) => (
          <span title={formatRelative(cell.getValue(), now)}>{formatTime(cell.getValue())}</span>
        ),
      }),
      scheduledColumn.accessor('completedTime', {
        header: 'Completed',
        cell: (cell) => formatTime(cell.getValue()),
      }),
      scheduledColumn.accessor((row) => row.state.kind, {
        id: 'state',
        header: 'State',
        cell: (cell) => <StateBadge state={cell.getValue()} />,
      }),
      scheduledColumn.accessor((row) => row.state.error, {
        id: 'error',
        header: 'Error',
        cell: (cell) => {
          const error = cell.getValue();
          return error === undefined ? null : <span className="error-inline">{error}</span>;
        },
      }),
      scheduledColumn.display({
        id: 'actions',
        header: () => <span className="visually-hidden">Actions</span>,
        cell: (cell) =>
          cell.row.original.state.kind === 'pending' ? (
            <button
              type="button"
              className="small danger"
              disabled={action.busy}
              aria-label={`Cancel ${cell.row.original.name} (${cell.row.original._id})`}
              onClick={() =>
                run(
                  () => cancel({ id: cell.row.original._id }),
                  () => 'Canceled',
                )
              }
            >
              Cancel
            </button>
          ) : null,
      }),
    ],
    [now, action.busy, cancel, run],
  );

  return (
    <>
      <ActionStatus error={action.error} message={action.message} />
      <DataTable
        label={`Scheduled functions: ${state}`}
        testId="scheduled"
        data={results}
        columns={columns}
        getRowId={(row) => row._id}
        rowProps={(row) => ({ 'data-state': row.state.kind })}
        empty={status === 'LoadingFirstPage' ? 'Loading…' : `No ${state} scheduled functions.`}
      />
      <div className="row pager">
        <LoadMore status={status} loadMore={() => loadMore(PAGE)} />
      </div>
    </>
  );
}

const cronColumn = createColumnHelper<Cron>();

function Crons() {
  const crons = useLive(api.schedules.crons, {});
  const now = useNow();
  const columns = useMemo(
    () => [
      cronColumn.accessor('name', {
        header: 'Name',
        cell: (cell) => <span className="mono">{cell.getValue()}</span>,
      }),
      cronColumn.accessor('function', {
        header: 'Function',
        cell: (cell) => (
          <Link className="mono" to={`/functions/${cell.getValue()}`}>
            {cell.getValue()}
          </Link>
        ),
      }),
      cronColumn.accessor('schedule', {
        header: 'Schedule',
        cell: (cell) => <span className="mono">{describeSchedule(cell.getValue())}</span>,
      }),
      cronColumn.accessor('lastRun', {
        header: 'Last run',
        cell: (cell) => (
          <span title={formatTime(cell.getValue())}>{formatRelative(cell.getValue(), now)}</span>
        ),
      }),
      cronColumn.accessor('nextRun', {
        header: 'Next run',
        cell: (cell) => (
          <span title={formatTime(cell.getValue())}>{formatRelative(cell.getValue(), now)}</span>
        ),
      }),
    ],
    [now],
  );
  return (
    <LiveView live={crons} what="crons">
      {(list) => (
        <DataTable
          label="Crons"
          testId="crons"
          data={list}
          columns={columns}
          getRowId={(cron) => cron.name}
          sortable
          empty="No crons (crons.ts defines them)."
        />
      )}
    </LiveView>
  );
}

const pad = (value: unknown) => String(typeof value === 'number' ? value : 0).padStart(2, '0');

/** A cron's schedule as `cronJobs()` records it (`{ type: 'interval', seconds }`, `{ type: 'cron', cron }`, …). */
function describeSchedule(schedule: unknown): string {
  if (schedule === null || typeof schedule !== 'object') return JSON.stringify(schedule);
  const s = schedule as Record<string, unknown>;
  switch (s.type) {
    case 'interval': {
      const parts = (['hours', 'minutes', 'seconds'] as const)
        .filter((unit) => typeof s[unit] === 'number')
        .map(
          (unit) =>
            `${String(s[unit])} ${unit === 'hours' ? 'h' : unit === 'minutes' ? 'min' : 's'}`,
        );
      if (parts.length > 0) return `every ${parts.join(' ')}`;
      break;
    }
    case 'cron':
      if (typeof s.cron === 'string') return s.cron;
      if (typeof s.cronspec === 'string') return s.cronspec;
      break;
    case 'hourly':
      return `hourly at :${pad(s.minuteUTC)} UTC`;
    case 'daily':
      return `daily at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    case 'weekly':
      return `${String(s.dayOfWeek)}s at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    case 'monthly':
      return `monthly on day ${String(s.day)} at ${pad(s.hourUTC)}:${pad(s.minuteUTC)} UTC`;
    default:
      break;
  }
  return JSON.stringify(schedule);
}
