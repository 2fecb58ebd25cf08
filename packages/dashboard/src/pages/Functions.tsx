import { useConvex } from 'convex/react';
import { makeFunctionReference } from 'convex/server';
import { convexToJson, type Value } from 'convex/values';
import { useMemo, useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { api, type FunctionInfo } from '../api';
import { onLogLine, type LogLine } from '../client';
import { ArgsForm, startDraft } from '../components/ArgsForm';
import {
  Badge,
  ErrorText,
  Field,
  JsonView,
  LiveView,
  PageHeader,
  StateBadge,
} from '../components/ui';
import { errorMessage, useLive } from '../hooks';
import { argsOf, describe, parseJsonValue, type Draft } from '../validator';

export function moduleOf(path: string): string {
  const colon = path.indexOf(':');
  return colon === -1 ? path : path.slice(0, colon);
}

/** `/functions` and `/functions/<module:name>`: the app's functions, and a form to run one. */
export function FunctionsPage() {
  const path = useParams()['*'] ?? '';
  const functions = useLive(api.functions.list, {});
  const [search, setSearch] = useState('');

  return (
    <section data-testid="page-functions" className="split">
      <title>{path !== '' ? `${path} · Functions · Sleigh` : 'Functions · Sleigh'}</title>
      <aside className="split-list" aria-label="Functions by module">
        <h2>Functions</h2>
        <Field label="Search functions">
          <input type="search" value={search} onChange={(event) => setSearch(event.target.value)} />
        </Field>
        <LiveView live={functions} what="functions">
          {(list) => <FunctionList list={list} selected={path} search={search} />}
        </LiveView>
      </aside>
      <div className="split-main">
        {path === '' ? (
          <>
            <PageHeader title="Functions" />
            <p className="muted">Pick a function to see its arguments and run it.</p>
          </>
        ) : (
          <LiveView live={functions} what="functions">
            {(list) => {
              const fn = list.find((candidate) => candidate.path === path);
              return fn === undefined ? (
                <>
                  <PageHeader title={path} />
                  <ErrorText error={`There is no function ${path}`} />
                </>
              ) : (
                <FunctionView key={fn.path} fn={fn} />
              );
            }}
          </LiveView>
        )}
      </div>
    </section>
  );
}

function FunctionList({
  list,
  selected,
  search,
}: {
  list: FunctionInfo[];
  selected: string;
  search: string;
}) {
  const groups = useMemo(() => {
    const needle = search.trim().toLowerCase();
    const byModule = new Map<string, FunctionInfo[]>();
    for (const fn of list) {
      if (needle !== '' && !fn.path.toLowerCase().includes(needle)) continue;
      const module = moduleOf(fn.path);
      byModule.set(module, [...(byModule.get(module) ?? []), fn]);
    }
    return [...byModule.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [list, search]);

  if (groups.length === 0)
    return <p className="muted">No functions{search !== '' ? ' match' : ''}.</p>;
  return (
    <div className="modules" data-testid="function-list">
      {groups.map(([module, fns]) => (
        <section key={module} className="module" aria-label={`Module ${module}`}>
          <h3 className="mono">{module}</h3>
          <ul className="link-list">
            {fns.map((fn) => (
              <li key={fn.path}>
                <Link
                  to={`/functions/${fn.path}`}
                  aria-current={fn.path === selected ? 'page' : undefined}
                  data-function={fn.path}
                >
                  <span className="mono" title={fn.path}>
                    {fn.path.slice(module.length + 1) || fn.path}
                  </span>
                  <span className="badges">
                    <StateBadge state={fn.kind} />
                    {fn.visibility === 'internal' && <StateBadge state="internal" />}
                  </span>
                </Link>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}

type Run =
  | { status: 'running'; startedAt: number; logs: LogLine[] }
  | { status: 'success'; durationMs: number; value: Value; logs: LogLine[] }
  | { status: 'failure'; durationMs: number; error: string; logs: LogLine[] };

function FunctionView({ fn }: { fn: FunctionInfo }) {
  const client = useConvex();
  const [draft, setDraft] = useState<Draft>(() => startDraft(fn.args));
  const [asJson, setAsJson] = useState(false);
  const [jsonArgs, setJsonArgs] = useState('{}');
  const [formError, setFormError] = useState<string | null>(null);
  const [run, setRun] = useState<Run | null>(null);

  const toggleJson = () => {
    if (!asJson) {
      try {
        setJsonArgs(JSON.stringify(convexToJson(argsOf(fn.args, draft)), null, 2));
      } catch {
        setJsonArgs('{}');
      }
    }
    setFormError(null);
    setAsJson(!asJson);
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    let args: Record<string, Value>;
    try {
      if (asJson) {
        const value = parseJsonValue(jsonArgs);
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          throw new Error('Arguments are a JSON object');
        args = value as Record<string, Value>;
      } else {
        args = argsOf(fn.args, draft);
      }
    } catch (thrown) {
      setFormError(thrown instanceof Error ? thrown.message : String(thrown));
      return;
    }
    setFormError(null);
    const logs: LogLine[] = [];
    const stop = onLogLine((line) => {
      if (line.path === fn.path && line.level === 'log') {
        logs.push(line);
        setRun((current) => (current === null ? current : { ...current, logs: [...logs] }));
      }
    });
    const startedAt = performance.now();
    setRun({ status: 'running', startedAt, logs: [] });
    const reference = makeFunctionReference(fn.path);
    const call =
      fn.kind === 'query'
        ? client.query(reference as ReturnType<typeof makeFunctionReference<'query'>>, args)
        : fn.kind === 'mutation'
          ? client.mutation(reference as ReturnType<typeof makeFunctionReference<'mutation'>>, args)
          : client.action(reference as ReturnType<typeof makeFunctionReference<'action'>>, args);
    (call as Promise<Value>)
      .then(
        (value) => {
          setRun({
            status: 'success',
            durationMs: performance.now() - startedAt,
            value,
            logs: [...logs],
          });
        },
        (error: unknown) => {
          setRun({
            status: 'failure',
            durationMs: performance.now() - startedAt,
            error: errorMessage(error),
            logs: [...logs],
          });
        },
      )
      .finally(() => {
        // Lines of the call arrive with its response; a tick later, stop listening.
        setTimeout(stop, 0);
      });
  };

  return (
    <>
      <PageHeader title={<span className="mono">{fn.path}</span>}>
        <span className="badges">
          <StateBadge state={fn.kind} />
          <StateBadge state={fn.visibility} />
        </span>
      </PageHeader>
      <div className="signature">
        <h2>Arguments</h2>
        <pre data-testid="args-validator">
          <code>{describe(fn.args)}</code>
        </pre>
        {fn.returns !== undefined && fn.returns !== null && (
          <>
            <h2>Returns</h2>
            <pre>
              <code>{describe(fn.returns)}</code>
            </pre>
          </>
        )}
      </div>
      <form className="card run-form" onSubmit={submit} aria-label={`Run ${fn.path}`}>
        <div className="row spread">
          <h2>Run</h2>
          <button type="button" className="small" onClick={toggleJson} aria-pressed={asJson}>
            Edit arguments as JSON
          </button>
        </div>
        {asJson ? (
          <Field label="Arguments (JSON)">
            <textarea
              className="code"
              rows={Math.min(16, Math.max(4, jsonArgs.split('\n').length + 1))}
              spellCheck={false}
              value={jsonArgs}
              onChange={(event) => setJsonArgs(event.target.value)}
            />
          </Field>
        ) : (
          <ArgsForm validator={fn.args} draft={draft} onChange={setDraft} />
        )}
        {formError !== null && <ErrorText error={formError} />}
        <div className="row">
          <button type="submit" className="primary" disabled={run?.status === 'running'}>
            {run?.status === 'running' ? 'Running…' : 'Run'}
          </button>
          {fn.kind !== 'query' && (
            <span className="muted">
              {fn.kind === 'mutation'
                ? 'A mutation writes to the database.'
                : 'An action may have side effects.'}
            </span>
          )}
        </div>
      </form>
      {run !== null && <RunResult run={run} />}
    </>
  );
}

function RunResult({ run }: { run: Run }) {
  return (
    <section
      className="card run-result"
      aria-label="Result"
      data-testid="run-result"
      data-status={run.status}
    >
      <h2>Result</h2>
      {run.status === 'running' ? (
        <p role="status">Running…</p>
      ) : (
        <p role="status" data-testid="run-status">
          <Badge tone={run.status === 'success' ? 'good' : 'bad'}>
            {run.status === 'success' ? 'success' : 'failed'}
          </Badge>{' '}
          in <span data-testid="run-duration">{Math.round(run.durationMs)} ms</span>
        </p>
      )}
      {run.status === 'success' && <JsonView value={run.value} label="Result JSON" />}
      {run.status === 'failure' && (
        <div className="error" role="alert" data-testid="run-error">
          <pre className="error-message">{run.error}</pre>
        </div>
      )}
      <h3>Log lines</h3>
      {run.logs.length === 0 ? (
        <p className="muted">No log lines.</p>
      ) : (
        <ol className="log-lines" data-testid="run-logs">
          {run.logs.map((line, index) => (
            <li key={index} className="mono">
              {line.text}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
