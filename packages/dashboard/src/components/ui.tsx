import type { Value } from 'convex/values';
import { useState, type ReactNode } from 'react';
import { jsonText } from '../format';
import type { Live } from '../hooks';

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="loading" role="status">
      {what}…
    </p>
  );
}

/** An error, shown where its data would be (role="alert": read out when it appears). */
export function ErrorText({ error, title }: { error: Error | string; title?: string }) {
  const message = typeof error === 'string' ? error : error.message;
  return (
    <div className="error" role="alert">
      {title !== undefined && <strong>{title}: </strong>}
      <span className="error-message">{message}</span>
    </div>
  );
}

/** Renders a live query: loading, its error, or its data. */
export function LiveView<T>({
  live,
  what,
  children,
}: {
  live: Live<T>;
  what?: string;
  children: (data: T) => ReactNode;
}) {
  if (live.status === 'loading')
    return <Loading {...(what !== undefined ? { what: `Loading ${what}` } : {})} />;
  if (live.status === 'error')
    return (
      <ErrorText
        error={live.error}
        {...(what !== undefined ? { title: `Could not load ${what}` } : {})}
      />
    );
  return <>{children(live.data)}</>;
}

export type Tone = 'neutral' | 'info' | 'good' | 'warn' | 'bad' | 'accent';

export function Badge({
  children,
  tone = 'neutral',
  title,
}: {
  children: ReactNode;
  tone?: Tone;
  title?: string;
}) {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

const STATE_TONES: Record<string, Tone> = {
  waiting: 'neutral',
  delayed: 'accent',
  pending: 'info',
  running: 'warn',
  completing: 'warn',
  finished: 'good',
  failed: 'bad',
  success: 'good',
  failure: 'bad',
  canceled: 'neutral',
  inProgress: 'warn',
  query: 'info',
  mutation: 'accent',
  action: 'warn',
  public: 'good',
  internal: 'neutral',
};

/** A state, outcome or kind as a coloured badge. */
export function StateBadge({ state }: { state: string | null | undefined }) {
  if (state === null || state === undefined) return <span className="muted">—</span>;
  return <Badge tone={STATE_TONES[state] ?? 'neutral'}>{state}</Badge>;
}

/** A Convex value as indented JSON, with a button to copy it. */
export function JsonView({ value, label }: { value: Value | undefined; label?: string }) {
  const text = jsonText(value);
  return <CodeBlock text={text} {...(label !== undefined ? { label } : {})} />;
}

export function CodeBlock({ text, label }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    navigator.clipboard.writeText(text).then(
      () => {
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      },
      () => setCopied(false),
    );
  };
  return (
    <div className="code-block">
      <pre tabIndex={0} aria-label={label ?? 'JSON'}>
        <code>{text}</code>
      </pre>
      {window.isSecureContext && (
        <button
          type="button"
          className="copy small"
          onClick={copy}
          aria-label={`Copy ${label ?? 'JSON'}`}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      )}
    </div>
  );
}

export function PageHeader({ title, children }: { title: ReactNode; children?: ReactNode }) {
  return (
    <header className="page-header">
      <h1>{title}</h1>
      {children !== undefined && <div className="page-actions">{children}</div>}
    </header>
  );
}

/** A label with a control under it: every input in the app has a visible label. */
export function Field({
  label,
  children,
  hint,
  inline,
}: {
  label: ReactNode;
  children: ReactNode;
  hint?: ReactNode;
  inline?: boolean;
}) {
  return (
    <label className={inline === true ? 'field field-inline' : 'field'}>
      <span className="field-label">{label}</span>
      {children}
      {hint !== undefined && <span className="field-hint">{hint}</span>}
    </label>
  );
}

/** An action's outcome next to its button: its error (role="alert") or what it did. */
export function ActionStatus({ error, message }: { error: string | null; message: string | null }) {
  if (error !== null) return <ErrorText error={error} />;
  if (message !== null)
    return (
      <p className="notice" role="status">
        {message}
      </p>
    );
  return null;
}

/** The "Load more" button of a paginated list (`usePaginatedQuery`), while there is more. */
export function LoadMore({
  status,
  loadMore,
}: {
  status: 'LoadingFirstPage' | 'CanLoadMore' | 'LoadingMore' | 'Exhausted';
  loadMore: () => void;
}) {
  if (status !== 'CanLoadMore' && status !== 'LoadingMore') return null;
  return (
    <button type="button" onClick={loadMore} disabled={status === 'LoadingMore'}>
      {status === 'LoadingMore' ? 'Loading…' : 'Load more'}
    </button>
  );
}
