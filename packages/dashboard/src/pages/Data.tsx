import { useMutation, usePaginatedQuery } from 'convex/react';
import { createColumnHelper } from '@tanstack/react-table';
import { useMemo, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { api, type Doc, type DocumentFilter, type DocumentsArgs, type TableInfo } from '../api';
import { DataTable, type ColumnDef } from '../components/DataTable';
import { DocumentEditor } from '../components/DocumentEditor';
import { ErrorBoundary } from '../components/ErrorBoundary';
import { ErrorText, Field, LiveView, LoadMore, PageHeader } from '../components/ui';
import { counted, formatCount, formatTime, jsonShort, jsonText } from '../format';
import { useAction, useLive } from '../hooks';
import { describe, parseJsonValue, templateFor } from '../validator';

const PAGE = 25;
const CREATION = 'by_creation_time';

export function indexesOf(table: TableInfo): Array<{ name: string; fields: string[] }> {
  const indexes = table.indexes ?? [];
  return indexes.some((index) => index.name === CREATION)
    ? indexes
    : [{ name: CREATION, fields: ['_creationTime'] }, ...indexes];
}

/** `/data` and `/data/:table`: the tables, and one table's documents. */
export function DataPage() {
  const { table } = useParams();
  const tables = useLive(api.data.tables, {});
  return (
    <section data-testid="page-data" className="split">
      <title>{table !== undefined ? `${table} · Data · Sleigh` : 'Data · Sleigh'}</title>
      <aside className="split-list" aria-label="Tables">
        <h2>Tables</h2>
        <LiveView live={tables} what="tables">
          {(list) =>
            list.length === 0 ? (
              <p className="muted">No tables yet.</p>
            ) : (
              <ul className="link-list" data-testid="table-list">
                {list.map((info) => (
                  <li key={info.name}>
                    <Link
                      to={`/data/${encodeURIComponent(info.name)}`}
                      aria-current={info.name === table ? 'page' : undefined}
                      data-table={info.name}
                    >
                      <span>{info.name}</span>
                      <span
                        className="count"
                        aria-label={`${formatCount(info.documents)} documents`}
                      >
                        {formatCount(info.documents)}
                      </span>
                    </Link>
                  </li>
                ))}
              </ul>
            )
          }
        </LiveView>
      </aside>
      <div className="split-main">
        {table === undefined ? (
          <>
            <PageHeader title="Data" />
            <p className="muted">Pick a table to see its documents.</p>
          </>
        ) : (
          <LiveView live={tables} what="tables">
            {(list) => {
              const info = list.find((candidate) => candidate.name === table);
              return info === undefined ? (
                <>
                  <PageHeader title={table} />
                  <ErrorText error={`There is no table named "${table}"`} />
                </>
              ) : (
                <TableView key={info.name} info={info} />
              );
            }}
          </LiveView>
        )}
      </div>
    </section>
  );
}

interface Query {
  index: string;
  order: 'asc' | 'desc';
  filters: DocumentFilter[];
}

/** The page's index, order and filters live in the URL (`?index=&order=&filters=`). */
function useDocumentQuery(): [Query, (query: Query) => void] {
  const [params, setParams] = useSearchParams();
  const query = useMemo((): Query => {
    let filters: DocumentFilter[] = [];
    try {
      const raw = params.get('filters');
      if (raw !== null) {
        filters = (JSON.parse(raw) as Array<{ field: string; value: string }>).map((filter) => ({
          field: filter.field,
          value: parseJsonValue(filter.value),
        }));
      }
    } catch {
      filters = [];
    }
    return {
      index: params.get('index') ?? CREATION,
      order: params.get('order') === 'asc' ? 'asc' : 'desc',
      filters,
    };
  }, [params]);
  const set = (next: Query) => {
    const out = new URLSearchParams();
    if (next.index !== CREATION) out.set('index', next.index);
    if (next.order !== 'desc') out.set('order', next.order);
    if (next.filters.length > 0) {
      out.set(
        'filters',
        JSON.stringify(
          next.filters.map((filter) => ({ field: filter.field, value: jsonText(filter.value, 0) })),
        ),
      );
    }
    setParams(out, { replace: true });
  };
  return [query, set];
}

function TableView({ info }: { info: TableInfo }) {
  const [query, setQuery] = useDocumentQuery();
  const [adding, setAdding] = useState(false);
  const indexes = indexesOf(info);
  const index = indexes.find((candidate) => candidate.name === query.index) ?? indexes[0];

  // Defaults are left out so a server that knows only `{ table, paginationOpts }` still answers.
  const args: Omit<DocumentsArgs, 'paginationOpts'> = { table: info.name };
  // An index the table does not have (an old link) falls back to the first, as the select shows.
  if (index !== undefined && index.name !== CREATION) args.index = index.name;
  if (query.order !== 'desc') args.order = query.order;
  if (query.filters.length > 0) args.filters = query.filters;

  return (
    <>
      <PageHeader title={info.name}>
        <button
          type="button"
          className="primary"
          onClick={() => setAdding((open) => !open)}
          aria-expanded={adding}
        >
          Add document
        </button>
      </PageHeader>
      <p className="muted">
        {formatCount(info.documents)} documents · indexes:{' '}
        {indexes
          .map((candidate) => `${candidate.name} (${candidate.fields.join(', ')})`)
          .join('; ')}
      </p>
      {info.documentType !== undefined && info.documentType !== null && (
        <details className="schema">
          <summary>Schema</summary>
          <pre>
            <code>{describe(info.documentType)}</code>
          </pre>
        </details>
      )}
      {adding && (
        <AddDocument
          table={info.name}
          initial={
            info.documentType !== undefined && info.documentType !== null
              ? jsonText(templateFor(info.documentType))
              : '{}'
          }
          onDone={() => setAdding(false)}
        />
      )}
      <QueryControls
        key={JSON.stringify({
          i: query.index,
          o: query.order,
          f: query.filters.map((f) => [f.field, jsonText(f.value, 0)]),
        })}
        indexes={indexes}
        query={{ ...query, index: index?.name ?? CREATION }}
        onChange={setQuery}
      />
      <ErrorBoundary resetKey={jsonText(args, 0)} title="Could not load documents">
        <DocumentList args={args} info={info} />
      </ErrorBoundary>
    </>
  );
}

interface FilterDraft {
  field: string;
  value: string;
}

function QueryControls({
  indexes,
  query,
  onChange,
}: {
  indexes: Array<{ name: string; fields: string[] }>;
  query: Query;
  onChange: (query: Query) => void;
}) {
  const [drafts, setDrafts] = useState<FilterDraft[]>(() =>
    query.filters.map((filter) => ({ field: filter.field, value: jsonText(filter.value, 0) })),
  );
  const [error, setError] = useState<string | null>(null);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const filters: DocumentFilter[] = [];
    for (const draft of drafts) {
      if (draft.field.trim() === '') continue;
      try {
        filters.push({ field: draft.field.trim(), value: parseJsonValue(draft.value) });
      } catch (thrown) {
        setError(
          `The value for "${draft.field}" is not JSON (${thrown instanceof Error ? thrown.message : String(thrown)}); strings need quotes: "general"`,
        );
        return;
      }
    }
    setError(null);
    onChange({ ...query, filters });
  };

  return (
    <form className="toolbar" onSubmit={apply} aria-label="Document query">
      <Field label="Index">
        <select
          value={query.index}
          onChange={(event) => onChange({ ...query, index: event.target.value })}
        >
          {indexes.map((index) => (
            <option key={index.name} value={index.name}>
              {index.name} ({index.fields.join(', ')})
            </option>
          ))}
        </select>
      </Field>
      <Field label="Order">
        <select
          value={query.order}
          onChange={(event) =>
            onChange({ ...query, order: event.target.value === 'asc' ? 'asc' : 'desc' })
          }
        >
          <option value="desc">Descending</option>
          <option value="asc">Ascending</option>
        </select>
      </Field>
      <fieldset className="filters">
        <legend>Filters (field = value)</legend>
        {drafts.map((draft, position) => (
          <div className="filter-row" key={position} data-testid="filter-row">
            <Field label={`Field ${position + 1}`}>
              <input
                type="text"
                value={draft.field}
                placeholder="channel or author.name"
                onChange={(event) =>
                  setDrafts(
                    drafts.map((d, i) =>
                      i === position ? { ...d, field: event.target.value } : d,
                    ),
                  )
                }
              />
            </Field>
            <Field label={`Value ${position + 1} (JSON)`}>
              <input
                type="text"
                className="code"
                value={draft.value}
                placeholder={'"general" or 3'}
                onChange={(event) =>
                  setDrafts(
                    drafts.map((d, i) =>
                      i === position ? { ...d, value: event.target.value } : d,
                    ),
                  )
                }
              />
            </Field>
            <button
              type="button"
              className="small"
              aria-label={`Remove filter ${position + 1}`}
              onClick={() => setDrafts(drafts.filter((_, i) => i !== position))}
            >
              Remove
            </button>
          </div>
        ))}
        <div className="row">
          <button type="button" onClick={() => setDrafts([...drafts, { field: '', value: '' }])}>
            Add filter
          </button>
          <button type="submit">Apply filters</button>
          {query.filters.length > 0 && (
            <button
              type="button"
              onClick={() => {
                setDrafts([]);
                onChange({ ...query, filters: [] });
              }}
            >
              Clear filters
            </button>
          )}
        </div>
        {error !== null && <ErrorText error={error} />}
      </fieldset>
    </form>
  );
}

const columnHelper = createColumnHelper<Doc>();

function DocumentList({
  args,
  info,
}: {
  args: Omit<DocumentsArgs, 'paginationOpts'>;
  info: TableInfo;
}) {
  const { results, status, loadMore } = usePaginatedQuery(api.data.documents, args, {
    initialNumItems: PAGE,
  });

  const columns = useMemo(() => {
    // The schema's fields, else every field seen on the loaded documents, in first-seen order.
    const names: string[] = [];
    const type = info.documentType;
    if (type !== undefined && type !== null && type.type === 'object') {
      names.push(...Object.keys(type.value));
    } else {
      const seen = new Set<string>();
      for (const doc of results) {
        for (const key of Object.keys(doc)) {
          if (!key.startsWith('_') && !seen.has(key)) {
            seen.add(key);
            names.push(key);
          }
        }
      }
    }
    const list: Array<ColumnDef<Doc, unknown>> = [
      columnHelper.accessor((doc) => doc._id, {
        id: '_id',
        header: '_id',
        cell: (cell) => (
          <Link
            to={`/data/${encodeURIComponent(info.name)}/${encodeURIComponent(cell.getValue())}`}
            className="mono"
          >
            {cell.getValue()}
          </Link>
        ),
      }),
      ...names.slice(0, 12).map((name) =>
        columnHelper.accessor((doc) => doc[name], {
          id: name,
          header: name,
          cell: (cell) => {
            const value = cell.getValue();
            return value === undefined ? (
              <span className="muted">—</span>
            ) : (
              <span className="mono">{jsonShort(value, 60)}</span>
            );
          },
        }),
      ),
      columnHelper.accessor((doc) => doc._creationTime, {
        id: '_creationTime',
        header: '_creationTime',
        cell: (cell) => (
          <time dateTime={new Date(cell.getValue()).toISOString()}>
            {formatTime(cell.getValue())}
          </time>
        ),
      }),
    ];
    return list;
  }, [info, results]);

  return (
    <div className="documents">
      <DataTable
        label={`Documents of ${info.name}`}
        testId="documents"
        data={results}
        columns={columns}
        getRowId={(doc) => doc._id}
        empty={
          status === 'LoadingFirstPage'
            ? 'Loading documents…'
            : status === 'CanLoadMore'
              ? 'None found yet: a filtered page looks at 5,000 documents; load more to look further.'
              : 'No documents.'
        }
      />
      <div className="row pager">
        <span className="muted" role="status">
          {status === 'LoadingFirstPage'
            ? 'Loading…'
            : `${counted(results.length, 'document')} shown${status === 'Exhausted' ? ' (all)' : ''}`}
        </span>
        <LoadMore status={status} loadMore={() => loadMore(PAGE)} />
      </div>
    </div>
  );
}

function AddDocument({
  table,
  initial,
  onDone,
}: {
  table: string;
  initial: string;
  onDone: () => void;
}) {
  const insert = useMutation(api.data.insert);
  const navigate = useNavigate();
  const [action, run] = useAction();
  return (
    <div className="card">
      <h2>New document in {table}</h2>
      <DocumentEditor
        initial={initial}
        submitLabel="Insert document"
        busy={action.busy}
        error={action.error}
        onSubmit={(document) =>
          run(
            () => insert({ table, document }),
            (id) => {
              onDone();
              void navigate(`/data/${encodeURIComponent(table)}/${encodeURIComponent(id)}`);
              return null;
            },
          )
        }
        onCancel={onDone}
      />
    </div>
  );
}
