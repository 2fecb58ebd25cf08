import { useMutation } from 'convex/react';
import type { Value } from 'convex/values';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api, type Doc } from '../api';
import { DocumentEditor } from '../components/DocumentEditor';
import { ActionStatus, JsonView, LiveView, PageHeader } from '../components/ui';
import { formatTime, jsonText } from '../format';
import { useAction, useLive } from '../hooks';

/** The editable part of a document: everything but `_id` and `_creationTime`. */
function fieldsOf(doc: Doc): Record<string, Value> {
  const { _id: _ignoredId, _creationTime: _ignoredTime, ...fields } = doc;
  return fields;
}

/** `/data/:table/:id`: one document, its JSON, replace and delete. */
export function DocumentPage() {
  const { table = '', id = '' } = useParams();
  const doc = useLive(api.data.document, { table, id });
  return (
    <section data-testid="page-data">
      <title>{`${id} · ${table} · Sleigh`}</title>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/data">Data</Link> /{' '}
        <Link to={`/data/${encodeURIComponent(table)}`}>{table}</Link> /{' '}
        <span className="mono">{id}</span>
      </nav>
      <LiveView live={doc} what="the document">
        {(found) =>
          found === null ? (
            <>
              <PageHeader title="Document not found" />
              <p role="status">
                There is no document <code>{id}</code> in {table} (it may have been deleted).
              </p>
            </>
          ) : (
            <DocumentView key={found._id} table={table} doc={found} />
          )
        }
      </LiveView>
    </section>
  );
}

function DocumentView({ table, doc }: { table: string; doc: Doc }) {
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const replace = useMutation(api.data.replace);
  const remove = useMutation(api.data.remove);
  const [save, runSave, resetSave] = useAction();
  const [deletion, runDelete] = useAction();
  const navigate = useNavigate();

  return (
    <>
      <PageHeader title={<span className="mono">{doc._id}</span>}>
        {!editing && (
          <button
            type="button"
            onClick={() => {
              resetSave();
              setEditing(true);
            }}
          >
            Edit document
          </button>
        )}
        {!confirming ? (
          <button type="button" className="danger" onClick={() => setConfirming(true)}>
            Delete document
          </button>
        ) : null}
      </PageHeader>
      <p className="muted">
        In <Link to={`/data/${encodeURIComponent(table)}`}>{table}</Link>, created{' '}
        {formatTime(doc._creationTime)}
      </p>
      {confirming && (
        <div className="confirm card" role="alertdialog" aria-labelledby="confirm-delete-title">
          <p id="confirm-delete-title">Delete this document? This cannot be undone.</p>
          <div className="row">
            <button
              type="button"
              className="danger"
              disabled={deletion.busy}
              autoFocus
              onClick={() =>
                runDelete(
                  () => remove({ table, ids: [doc._id] }),
                  () => {
                    void navigate(`/data/${encodeURIComponent(table)}`);
                    return null;
                  },
                )
              }
            >
              Confirm delete
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </div>
          <ActionStatus error={deletion.error} message={null} />
        </div>
      )}
      {editing ? (
        <div className="card">
          <h2>Replace the document</h2>
          <p className="muted">
            The whole document is replaced by this JSON (<code>_id</code> and{' '}
            <code>_creationTime</code> are kept).
          </p>
          <DocumentEditor
            initial={jsonText(fieldsOf(doc))}
            submitLabel="Save document"
            busy={save.busy}
            error={save.error}
            onSubmit={(document) =>
              runSave(
                () => replace({ table, id: doc._id, document }),
                () => {
                  setEditing(false);
                  return 'Saved';
                },
              )
            }
            onCancel={() => setEditing(false)}
          />
        </div>
      ) : (
        <>
          <ActionStatus error={null} message={save.message} />
          <JsonView value={doc} label="Document JSON" />
        </>
      )}
    </>
  );
}
