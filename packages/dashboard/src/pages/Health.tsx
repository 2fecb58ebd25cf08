import { useState } from 'react';
import { api } from '../api';
import { storedKey } from '../client';
import { CodeBlock, ErrorText, LiveView, PageHeader } from '../components/ui';
import { formatDuration, formatRelative, formatTime } from '../format';
import { useNow } from '../hooks';
import { useLive } from '../hooks';

/** `/health`: the server, its peers, and the live figures `/metrics` also exports. */
export function HealthPage() {
  const status = useLive(api.health.status, {});
  const now = useNow();
  return (
    <section data-testid="page-health">
      <title>Health · Sleigh</title>
      <PageHeader title="Health" />
      <LiveView live={status} what="the server's status">
        {(health) => (
          <>
            <dl className="figures" data-testid="health-figures">
              <div data-figure="version">
                <dt>Version</dt>
                <dd>{health.version}</dd>
              </div>
              <div data-figure="driver">
                <dt>Storage</dt>
                <dd>{health.driver}</dd>
              </div>
              <div data-figure="commitsPerSecond">
                <dt>Commits/s</dt>
                <dd>{Math.round(health.commitsPerSecond * 10) / 10}</dd>
              </div>
              <div data-figure="subscriptions">
                <dt>Subscriptions</dt>
                <dd>{health.subscriptions}</dd>
              </div>
              <div data-figure="connections">
                <dt>Connections</dt>
                <dd>{health.connections}</dd>
              </div>
              <div data-figure="jobLagMs">
                <dt>Job lag</dt>
                <dd>{formatDuration(health.jobLagMs)}</dd>
              </div>
              <div data-figure="scheduledLagMs">
                <dt>Scheduled lag</dt>
                <dd>{formatDuration(health.scheduledLagMs)}</dd>
              </div>
              <div data-figure="uptime">
                <dt>Up since</dt>
                <dd title={formatTime(health.server.startedAt)}>
                  {formatRelative(health.server.startedAt, now)}
                </dd>
              </div>
            </dl>
            <h2>Servers</h2>
            <div className="table-wrap">
              <table aria-label="Servers" data-testid="servers">
                <thead>
                  <tr>
                    <th scope="col">Id</th>
                    <th scope="col">Host</th>
                    <th scope="col">PID</th>
                    <th scope="col">Started</th>
                    <th scope="col">Code</th>
                  </tr>
                </thead>
                <tbody>
                  {health.servers.map((server) => (
                    <tr key={server.id} aria-current={server.self ? 'true' : undefined}>
                      <td className="mono">
                        {server.id}
                        {server.self && <span className="muted"> (this one)</span>}
                      </td>
                      <td>{server.host}</td>
                      <td className="num">{server.pid}</td>
                      <td title={formatTime(server.startedAt)}>
                        {formatRelative(server.startedAt, now)}
                      </td>
                      <td className="mono" title="A hash of the server's functions folder">
                        {server.code ?? '—'}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </LiveView>
      <Metrics />
    </section>
  );
}

/** `/metrics` needs the admin key as a bearer token, so the page fetches it with the key. */
function Metrics() {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const load = () => {
    setBusy(true);
    setError(null);
    fetch('/metrics', { headers: { Authorization: `Bearer ${storedKey.get() ?? ''}` } })
      .then(async (response) => {
        const body = await response.text();
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}: ${body}`);
        setText(body);
      })
      .catch((thrown: unknown) =>
        setError(thrown instanceof Error ? thrown.message : String(thrown)),
      )
      .finally(() => setBusy(false));
  };
  return (
    <section aria-labelledby="metrics-title">
      <h2 id="metrics-title">Metrics</h2>
      <p className="muted">
        The same figures in Prometheus text format at <a href="/metrics">/metrics</a> (send the
        admin key as <code>Authorization: Bearer &lt;key&gt;</code>).
      </p>
      <button type="button" onClick={load} disabled={busy}>
        {busy ? 'Loading…' : text === null ? 'Show /metrics' : 'Refresh /metrics'}
      </button>
      {error !== null && <ErrorText error={error} title="Could not load /metrics" />}
      {text !== null && <CodeBlock text={text} label="/metrics text" />}
    </section>
  );
}
