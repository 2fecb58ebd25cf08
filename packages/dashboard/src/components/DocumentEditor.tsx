import type { Value } from 'convex/values';
import { useId, useState, type FormEvent } from 'react';
import { parseJsonValue } from '../validator';

/**
 * A document as JSON text in a textarea (Convex's JSON encoding: `{"$integer": ...}` for
 * int64). Parse errors and the server's errors (a document that does not match the schema)
 * show verbatim under it, in an element with role="alert".
 */
export function DocumentEditor({
  initial,
  submitLabel,
  busy,
  error,
  onSubmit,
  onCancel,
}: {
  initial: string;
  submitLabel: string;
  busy: boolean;
  /** The server's error for the last submit. */
  error: string | null;
  onSubmit: (document: Record<string, Value>) => void;
  onCancel: () => void;
}) {
  const id = useId();
  const [text, setText] = useState(initial);
  const [parseError, setParseError] = useState<string | null>(null);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    let value: Value;
    try {
      value = parseJsonValue(text);
    } catch (thrown) {
      setParseError(`Not valid JSON: ${thrown instanceof Error ? thrown.message : String(thrown)}`);
      return;
    }
    if (
      value === null ||
      typeof value !== 'object' ||
      Array.isArray(value) ||
      value instanceof ArrayBuffer
    ) {
      setParseError('A document is a JSON object: { "field": value, ... }');
      return;
    }
    setParseError(null);
    const {
      _id: _ignoredId,
      _creationTime: _ignoredTime,
      ...fields
    } = value as Record<string, Value>;
    onSubmit(fields);
  };

  const shown = parseError ?? error;
  return (
    <form className="editor" onSubmit={submit}>
      <label htmlFor={id} className="field-label">
        Document (JSON)
      </label>
      <textarea
        id={id}
        className="code"
        rows={Math.min(24, Math.max(6, text.split('\n').length + 1))}
        spellCheck={false}
        value={text}
        onChange={(event) => setText(event.target.value)}
        aria-invalid={shown !== null}
        aria-describedby={shown !== null ? `${id}-error` : undefined}
      />
      {shown !== null && (
        <div className="error" role="alert" id={`${id}-error`} data-testid="editor-error">
          <pre className="error-message">{shown}</pre>
        </div>
      )}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Saving…' : submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
