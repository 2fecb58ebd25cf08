import { createColumnHelper } from '@tanstack/react-table';
import { useState } from 'react';
import { Link } from 'react-router';
import { api, type Execution, type Outcome } from '../api';
import { DataTable } from '../components/DataTable';
import { Field, LiveView, PageHeader, StateBadge } from '../components/ui';
import { formatDuration, formatTime } from '../format';
import { useLive } from '../hooks';

const column = createColumnHelper<Execution>();
const COLUMNS = [
  column.accessor('startedAt', {
    header: 'Started',
    cell: (cell) => (
      <time dateTime={new Date(cell.getValue()).toISOString()}>{formatTime(cell.getValue())}</time>
    ),
  }),
  column.accessor('path', {
    header: 'Function',
    cell: (cell) => (
      <Link className="mono" to={`/functions/${cell.getValue()}`}>
        {cell.getValue()}
      </Link>
    ),
  }),
  column.accessor('kind', {
    header: 'Kind',
    cell: (cell) => <StateBadge state={cell.getValue()} />,
  }),
  column.accessor('source', { header: 'Source' }),
  column.accessor('outcome', {
    header: 'Outcome',
    cell: (cell) => <StateBadge state={cell.getValue()} />,
  }),
  column.accessor('durationMs', {
    header: 'Duration',
    cell: (cell) => <span className="num">{formatDuration(cell.getValue())}</span>,
  }),
  column.accessor('logLines', {
    header: 'Lines',
    cell: (cell) => <span className="num">{cell.getValue().length}</span>,
  }),
];

const LIMITS = [50, 200, 1000];

/** `/logs`: the server's recent executions, live, filtered by function and outcome. */
export function LogsPage() {
  const [fn, setFn] = useState('');
  const [outcome, setOutcome] = useState<'' | Outcome>('');
  const [limit, setLimit] = useState(200);
  const functions = useLive(api.functions.list, {});
  const args: { function?: string; outcome?: Outcome; limit?: number } = {};
  if (fn !== '') args.function = fn;
  if (outcome !== '') args.outcome = outcome;
  if (limit !== 200) args.limit = limit;
  const executions = useLive(api.logs.recent, args);

  const paths = functions.status === 'ready' ? functions.data.map((info) => info.path).sort() : [];

  return (
    <section data-testid="page-logs">
      <title>Logs · Sleigh</title>
      <PageHeader title="Logs" />
      <p className="muted">
        This server&apos;s recent executions (the last 1,000 in memory), newest first, live.
      </p>
      <form
        className="toolbar"
        aria-label="Log filters"
        onSubmit={(event) => event.preventDefault()}
      >
        <Field label="Function">
          <select value={fn} onChange={(event) => setFn(event.target.value)}>
            <option value="">All functions</option>
            {paths.map((path) => (
              <option key={path} value={path}>
                {path}
              </option>
            ))}
            {fn !== '' && !paths.includes(fn) && <option value={fn}>{fn}</option>}
          </select>
        </Field>
        <Field label="Outcome">
          <select
            value={outcome}
            onChange={(event) => setOutcome(event.target.value as '' | Outcome)}
          >
            <option value="">Any outcome</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
          </select>
        </Field>
        <Field label="Show">
          <select value={limit} onChange={(event) => setLimit(Number(event.target.value))}>
            {LIMITS.map((count) => (
              <option key={count} value={count}>
                last {count}
              </option>
            ))}
          </select>
        </Field>
      </form>
      <LiveView live={executions} what="logs">
        {(list) => (
          <DataTable
            label="Executions"
            testId="executions"
            data={list}
            columns={COLUMNS}
            getRowId={(execution) => execution.id}
            rowLabel={(execution) => `${execution.path} at ${formatTime(execution.startedAt)}`}
            rowProps={(execution) => ({
              'data-outcome': execution.outcome,
              'data-path': execution.path,
            })}
            renderExpanded={(execution) => <ExecutionDetails execution={execution} />}
            empty="No executions yet."
          />
        )}
      </LiveView>
    </section>
  );
}

function ExecutionDetails({ execution }: { execution: Execution }) {
  return (
    <div className="execution-details" data-testid="execution-details">
      {execution.error !== null && (
        <div className="error">
          <strong>Error: </strong>
          <pre className="error-message">{execution.error}</pre>
        </div>
      )}
      {execution.logLines.length === 0 ? (
        <p className="muted">No log lines.</p>
      ) : (
        <ol className="log-lines" aria-label="Log lines">
          {execution.logLines.map((line, index) => (
            <li key={index} className="mono">
              {line}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
