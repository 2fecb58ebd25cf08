import { useMutation } from 'convex/react';
import { useState, type ReactNode } from 'react';
import { Link, useParams } from 'react-router';
import { api, ENDED_STATES, type GraphNode, type JobDetail } from '../api';
import { GraphLegend, JobGraph, shownState, type RankDir } from '../components/JobGraph';
import {
  ActionStatus,
  ErrorText,
  Field,
  JsonView,
  LiveView,
  Loading,
  PageHeader,
  StateBadge,
} from '../components/ui';
import { counted, formatBytes, formatDuration, formatTime, jsonShort } from '../format';
import { useAction, useLive, useNow } from '../hooks';

/** `/jobs/:id`: a pool job's timings, attempts, args and result, actions and its graph. */
export function JobPage() {
  const { id = '' } = useParams();
  const job = useLive(api.pools.job, { id });
  return (
    <section data-testid="page-job">
      <title>
        {job.status === 'ready' && job.data !== null
          ? `${job.data.name} · Job · Sleigh`
          : 'Job · Sleigh'}
      </title>
      <LiveView live={job} what="the job">
        {(found) =>
          found === null ? (
            <>
              <nav aria-label="Breadcrumb" className="breadcrumb">
                <Link to="/pools">Pools</Link> / <span className="mono">{id}</span>
              </nav>
              <PageHeader title="Job not found" />
              <p role="status">
                There is no job <code>{id}</code> (its record may have expired).
              </p>
            </>
          ) : (
            <JobView job={found} />
          )
        }
      </LiveView>
    </section>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function JobView({ job }: { job: JobDetail }) {
  const cancel = useMutation(api.pools.cancel);
  const retry = useMutation(api.pools.retry);
  const rerun = useMutation(api.pools.rerun);
  const [action, run] = useAction();
  const now = useNow();
  const ended = ENDED_STATES.includes(job.state);
  // An ended job's `due` is when its record expires, not when it was due to run.
  const due = ended ? null : job.due;
  const waited = job.startedAt !== null ? job.startedAt - (due ?? job.enqueuedAt) : null;
  const graph = useLive(api.pools.graph, { id: job.id });
  const names = new Map(
    graph.status === 'ready' ? graph.data.nodes.map((node) => [node.id, node]) : [],
  );
  const ran = job.startedAt !== null ? (job.finishedAt ?? now) - job.startedAt : null;
  const total = (job.finishedAt ?? now) - job.enqueuedAt;

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/pools">Pools</Link> /{' '}
        <Link to={`/pools/${encodeURIComponent(job.pool)}`}>{job.pool}</Link> /{' '}
        <span>{job.name}</span>
      </nav>
      <PageHeader title={job.name}>
        <span data-testid="job-state" data-state={job.state}>
          <StateBadge state={job.state} />
        </span>
        {job.result !== null && <StateBadge state={job.result.kind} />}
      </PageHeader>
      <div className="row actions" role="group" aria-label="Job actions">
        {job.state === 'failed' && (
          <button
            type="button"
            disabled={action.busy}
            onClick={() =>
              run(
                () => retry({ ids: [job.id] }),
                (n) => `Retried ${counted(n, 'job')}`,
              )
            }
          >
            Retry
          </button>
        )}
        {!ended && (
          <button
            type="button"
            className="danger"
            disabled={action.busy}
            onClick={() =>
              run(
                () => cancel({ ids: [job.id] }),
                (n) => `Canceled ${counted(n, 'job')}`,
              )
            }
          >
            Cancel
          </button>
        )}
        <button
          type="button"
          disabled={action.busy}
          onClick={() =>
            run(
              () => rerun({ id: job.id }),
              (n) => `${counted(n, 'job')} set to run again`,
            )
          }
        >
          Re-run downstream
        </button>
        <Link to={`/jobs/${encodeURIComponent(job.id)}/graph`}>Open the graph</Link>
      </div>
      <ActionStatus error={action.error} message={action.message} />

      <div className="columns">
        <section className="card" aria-labelledby="job-details">
          <h2 id="job-details">Details</h2>
          <dl className="details" data-testid="job-details">
            <Row label="Id">
              <span className="mono">{job.id}</span>
            </Row>
            <Row label="Pool">
              <Link to={`/pools/${encodeURIComponent(job.pool)}`}>{job.pool}</Link>
            </Row>
            <Row label="Function">
              <Link className="mono" to={`/functions/${job.fn}`}>
                {job.fn}
              </Link>{' '}
              <StateBadge state={job.kind} />
            </Row>
            <Row label="Attempt">
              {job.attempt}
              {job.maxAttempts !== null ? ` of ${job.maxAttempts}` : ''}
            </Row>
            <Row label="Priority">{jsonShort(job.priority)}</Row>
            <Row label="Group">{job.group === null ? '—' : jsonShort(job.group)}</Row>
            <Row label="Unique key">{job.uniqueKey === null ? '—' : jsonShort(job.uniqueKey)}</Row>
            <Row label="Args size">{formatBytes(job.argsBytes)}</Row>
            <Row label="Result size">{formatBytes(job.resultBytes)}</Row>
          </dl>
        </section>
        <section className="card" aria-labelledby="job-timings">
          <h2 id="job-timings">Timings</h2>
          <dl className="details" data-testid="job-timings">
            <Row label="Enqueued">{formatTime(job.enqueuedAt)}</Row>
            {due !== null && due !== job.enqueuedAt && <Row label="Due">{formatTime(due)}</Row>}
            <Row label="Started">{formatTime(job.startedAt)}</Row>
            <Row label="Finished">{formatTime(job.finishedAt)}</Row>
            <Row label="Waited">{formatDuration(waited)}</Row>
            <Row label={job.finishedAt === null && job.startedAt !== null ? 'Running for' : 'Ran'}>
              {formatDuration(ran)}
            </Row>
            <Row label={job.finishedAt === null ? 'Age' : 'Total'}>{formatDuration(total)}</Row>
          </dl>
        </section>
      </div>

      {job.result !== null &&
        job.result.kind !== 'success' &&
        (job.result.error ?? job.result.reason) !== undefined && (
          <ErrorText
            error={job.result.error ?? job.result.reason ?? ''}
            title={`Job ${job.result.kind}`}
          />
        )}

      <section aria-labelledby="job-failures">
        <h2 id="job-failures">Failed attempts ({job.failures.length})</h2>
        {job.failures.length === 0 ? (
          <p className="muted">No failed attempts.</p>
        ) : (
          <div className="table-wrap">
            <table aria-label="Failed attempts" data-testid="job-failures">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {job.failures.map((failure, index) => (
                  <tr key={index}>
                    <td className="num">{failure.attempt ?? index + 1}</td>
                    <td>{formatTime(failure.startedAt)}</td>
                    <td>{formatTime(failure.endedAt)}</td>
                    <td className="num">{formatDuration(failure.endedAt - failure.startedAt)}</td>
                    <td>
                      <pre className="error-inline">{failure.error}</pre>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <div className="columns">
        <section aria-labelledby="job-args">
          <h2 id="job-args">Args</h2>
          <JsonView value={job.args} label="Args JSON" />
        </section>
        <section aria-labelledby="job-result">
          <h2 id="job-result">Result</h2>
          {job.result === null ? (
            <p className="muted">No result yet.</p>
          ) : job.result.kind === 'success' ? (
            <JsonView value={job.result.returnValue ?? null} label="Result JSON" />
          ) : (
            <JsonView value={job.result} label="Result JSON" />
          )}
        </section>
      </div>

      <div className="columns">
        <section aria-labelledby="job-depends-on">
          <h2 id="job-depends-on">Depends on ({job.dependsOn.length})</h2>
          <JobLinks ids={job.dependsOn} nodes={names} testId="depends-on" />
        </section>
        <section aria-labelledby="job-dependents">
          <h2 id="job-dependents">Dependents ({job.dependents.length})</h2>
          <JobLinks ids={job.dependents} nodes={names} testId="dependents" />
        </section>
      </div>

      {(job.dependsOn.length > 0 || job.dependents.length > 0) && <GraphSection id={job.id} />}
    </>
  );
}

/** Links to jobs by id, named (and their state shown) when the job's graph knows them. */
function JobLinks({
  ids,
  nodes,
  testId,
}: {
  ids: string[];
  nodes: Map<string, GraphNode>;
  testId: string;
}) {
  if (ids.length === 0) return <p className="muted">None.</p>;
  return (
    <ul className="job-links" data-testid={testId}>
      {ids.map((id) => {
        const node = nodes.get(id);
        return (
          <li key={id} data-job-id={id}>
            <Link to={`/jobs/${encodeURIComponent(id)}`}>
              {node?.name ?? <span className="mono">{id}</span>}
            </Link>{' '}
            {node !== undefined && <StateBadge state={shownState(node)} />}
          </li>
        );
      })}
    </ul>
  );
}

/** The job's dependency graph (live), with the layout direction to choose. */
export function GraphSection({ id, title = 'Dependency graph' }: { id: string; title?: string }) {
  const graph = useLive(api.pools.graph, { id });
  const [rankdir, setRankdir] = useState<RankDir>('LR');
  return (
    <section aria-labelledby="graph-title" className="graph-section">
      <div className="row spread">
        <h2 id="graph-title">{title}</h2>
        <Field label="Layout" inline>
          <select
            value={rankdir}
            onChange={(event) => setRankdir(event.target.value === 'TB' ? 'TB' : 'LR')}
          >
            <option value="LR">Left to right</option>
            <option value="TB">Top to bottom</option>
          </select>
        </Field>
      </div>
      <GraphLegend />
      {graph.status === 'loading' && <Loading what="Loading the graph" />}
      {graph.status === 'error' && (
        <ErrorText error={graph.error} title="Could not load the graph" />
      )}
      {graph.status === 'ready' && (
        <>
          {graph.data.truncated && (
            <p className="notice" role="status">
              The graph has more jobs than shown (the first {graph.data.nodes.length}).
            </p>
          )}
          <JobGraph graph={graph.data} current={id} rankdir={rankdir} />
        </>
      )}
    </section>
  );
}
