/**
 * `sleigh export` and `sleigh import`: a snapshot of every user table as a folder of JSON
 * lines, one file per table, plus `tables.json` with each table's number and indexes (ids
 * carry the table number, so an import recreates tables under the same numbers).
 *
 *   <snapshot>/tables.json         {"format":"sleigh-snapshot","version":1,"ts":"…","tables":[…]}
 *   <snapshot>/<table>.jsonl       one Convex-encoded document per line
 *
 * Export reads one consistent snapshot; when it fails, it removes the folder it created.
 *
 * Import writes into an empty store, in batches, and reproduces every document, id and
 * _creationTime. It is all or nothing:
 *
 * - `checkSnapshot` reads the whole snapshot first, streaming (a document at a time), and
 *   refuses it, naming the file and line, unless tables.json is well formed, every document is
 *   one the store will accept, with an id of its own table, no id appears twice, and each file
 *   holds the number of documents tables.json announces (a short file is a truncated copy).
 *   The command runs it before it opens (and so creates) the store.
 * - Into a store whose applied schema validates documents (a server ran on it), the tables that
 *   schema declares are read through once more and every document checked against it
 *   (`checkAgainstSchema`), before the first write: a later start on the same schema checks
 *   only what changed, so it would never see them.
 * - The write then cannot fail on the snapshot's content; when it fails anyway (the database
 *   goes away, the disk fills, a file changes under it), it is undone: see `importSnapshot`.
 */

export interface TableManifest {
  readonly name: string;
  readonly number: number;
  readonly documents: number;
  readonly indexes: Array<{ name: string; fields: string[] }>;
}

export interface Manifest {
  readonly format: 'sleigh-snapshot';
  readonly version: 1;
  readonly ts: string;
  readonly exportedAt: string;
  readonly tables: TableManifest[];
}

/** A snapshot that `checkSnapshot` read through and found importable. */
export interface CheckedSnapshot {
  /** The snapshot folder, absolute. */
  readonly dir: string;
  /** Its tables, as tables.json lists them (checked). */
  readonly tables: readonly TableManifest[];
  /** Documents in all its files. */
  readonly documents: number;
}

export const PAGE = 1000;
/** Highest table number an id can carry (ids.ts). */
export const MAX_TABLE_NUMBER = 0x7fffffff;

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A Node system error (ENOENT, EACCES, ENOSPC…), as file operations throw. */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

/** A value as an error message shows it: JSON, cut short. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  // Values here come from JSON.parse: JSON.stringify always has text for them.
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
