import {
  flexRender,
  getCoreRowModel,
  getExpandedRowModel,
  getSortedRowModel,
  useReactTable,
  type ColumnDef,
  type ExpandedState,
  type Row,
  type SortingState,
} from '@tanstack/react-table';
import { Fragment, useState, type ReactNode } from 'react';

export type { ColumnDef };

interface Props<T> {
  /** The table's accessible name. */
  label: string;
  data: T[];
  // Columns mix value types; TanStack's own examples type them this way.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  columns: Array<ColumnDef<T, any>>;
  getRowId: (row: T) => string;
  /** Rows can be expanded to show this under them (a toggle button opens them). */
  renderExpanded?: (row: T) => ReactNode;
  /** Sort by clicking headers (client-side: only for lists that are complete in memory). */
  sortable?: boolean;
  empty?: ReactNode;
  testId?: string;
  rowProps?: (row: T) => Record<string, string | undefined>;
  /** Names a row in its expand button ("Show details of <label>"). */
  rowLabel?: (row: T) => string;
}

/** A plain table on TanStack Table: header, rows, optional sorting and expandable rows. */
export function DataTable<T>({
  label,
  data,
  columns,
  getRowId,
  renderExpanded,
  sortable = false,
  empty = 'Nothing here.',
  testId,
  rowProps,
  rowLabel,
}: Props<T>) {
  const [sorting, setSorting] = useState<SortingState>([]);
  const [expanded, setExpanded] = useState<ExpandedState>({});
  // TanStack Table returns new functions each render by design; the React Compiler rule that
  // flags it does not apply (this app does not use the compiler).
  // eslint-disable-next-line react-hooks/incompatible-library
  const table = useReactTable({
    data,
    columns,
    getRowId: (row) => getRowId(row),
    state: { sorting, expanded },
    onSortingChange: setSorting,
    onExpandedChange: setExpanded,
    getCoreRowModel: getCoreRowModel(),
    getRowCanExpand: () => renderExpanded !== undefined,
    getExpandedRowModel: getExpandedRowModel(),
    ...(sortable ? { getSortedRowModel: getSortedRowModel() } : {}),
    enableSorting: sortable,
  });
  const width = table.getVisibleLeafColumns().length + (renderExpanded !== undefined ? 1 : 0);

  return (
    <div className="table-wrap">
      <table aria-label={label} data-testid={testId}>
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {renderExpanded !== undefined && (
                <th scope="col">
                  <span className="visually-hidden">Details</span>
                </th>
              )}
              {group.headers.map((header) => {
                const sorted = header.column.getIsSorted();
                return (
                  <th
                    key={header.id}
                    scope="col"
                    aria-sort={
                      sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : undefined
                    }
                  >
                    {header.isPlaceholder ? null : header.column.getCanSort() ? (
                      <button
                        type="button"
                        className="sort"
                        onClick={header.column.getToggleSortingHandler()}
                      >
                        {flexRender(header.column.columnDef.header, header.getContext())}
                        <span aria-hidden="true">
                          {sorted === 'asc' ? ' ▲' : sorted === 'desc' ? ' ▼' : ''}
                        </span>
                      </button>
                    ) : (
                      flexRender(header.column.columnDef.header, header.getContext())
                    )}
                  </th>
                );
              })}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.length === 0 && (
            <tr>
              <td colSpan={width} className="empty">
                {empty}
              </td>
            </tr>
          )}
          {table.getRowModel().rows.map((row: Row<T>) => (
            <Fragment key={row.id}>
              <tr data-row-id={row.id} {...rowProps?.(row.original)}>
                {renderExpanded !== undefined && (
                  <td className="expander">
                    <button
                      type="button"
                      className="small icon"
                      aria-expanded={row.getIsExpanded()}
                      aria-label={`${row.getIsExpanded() ? 'Hide' : 'Show'} details${
                        rowLabel !== undefined ? ` of ${rowLabel(row.original)}` : ''
                      }`}
                      onClick={row.getToggleExpandedHandler()}
                    >
                      {row.getIsExpanded() ? '▾' : '▸'}
                    </button>
                  </td>
                )}
                {row.getVisibleCells().map((cell) => (
                  <td key={cell.id} data-column={cell.column.id}>
                    {flexRender(cell.column.columnDef.cell, cell.getContext())}
                  </td>
                ))}
              </tr>
              {row.getIsExpanded() && renderExpanded !== undefined && (
                <tr className="expanded-row">
                  <td colSpan={width}>{renderExpanded(row.original)}</td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}
