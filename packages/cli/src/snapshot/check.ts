/** Reading a snapshot through before an import writes anything: see format.ts. */
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  BY_CREATION_TIME,
  BY_ID,
  checkDocument,
  checkedIndexKey,
  checkIndexName,
  checkTableName,
  FIRST_USER_TABLE_NUMBER,
  indexKeyFields,
  StorageError,
  tableNumberOfId,
  type Document,
  type KeyedIndex,
} from '@sleigh/storage';
import { documentMismatch } from '@sleigh/engine';
import { jsonToConvex, type JSONValue, type ValidatorJSON, type Value } from 'convex/values';
import { CliError, type Output } from '../context.js';
import { Progress } from '../progress.js';
import {
  type CheckedSnapshot,
  isObject,
  isSystemError,
  MAX_TABLE_NUMBER,
  message,
  show,
  type TableManifest,
} from './format.js';

/** tables.json, checked field by field: every refusal names the file and what is wrong. */
function readManifest(dir: string): TableManifest[] {
  let folder;
  try {
    folder = statSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError(`${dir} does not exist; give the folder \`sleigh export\` wrote`);
    }
    throw new CliError(`Cannot read ${dir}: ${message(error)}`);
  }
  if (!folder.isDirectory()) {
    throw new CliError(`${dir} is not a folder; a snapshot is the folder \`sleigh export\` wrote`);
  }
  const file = join(dir, 'tables.json');
  if (!existsSync(file))
    throw new CliError(`${dir} is not a Sleigh snapshot: tables.json is missing`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`Cannot read ${file}: ${message(error)}`);
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${file} is not valid JSON: ${message(error)}`);
  }
  const bad = (what: string) => new CliError(`${file}: ${what}`);
  if (!isObject(manifest)) {
    throw bad(
      `must be a JSON object, got ${Array.isArray(manifest) ? 'an array' : show(manifest)}`,
    );
  }
  if (manifest.format !== 'sleigh-snapshot' || manifest.version !== 1) {
    throw new CliError(
      `${file} is not a version 1 Sleigh snapshot (format ${show(manifest.format)}, version ${show(manifest.version)})`,
    );
  }
  const entries = manifest.tables;
  if (!Array.isArray(entries)) throw bad(`"tables" must be an array, got ${show(entries)}`);
  const names = new Map<string, number>();
  const numbers = new Map<number, string>();
  return entries.map((entry: unknown, i): TableManifest => {
    const at = `tables[${i}]`;
    if (!isObject(entry)) throw bad(`${at} must be an object, got ${show(entry)}`);
    const { name, number, documents, indexes } = entry;
    if (typeof name !== 'string') throw bad(`${at}.name must be a string, got ${show(name)}`);
    if (name.startsWith('_')) {
      throw bad(
        `${at}.name "${name}" is a system table (names starting with "_" are Sleigh's own); a snapshot holds only user tables`,
      );
    }
    try {
      checkTableName(name);
    } catch (error) {
      throw bad(`${at}.name: ${message(error)}`);
    }
    const twin = names.get(name);
    if (twin !== undefined) throw bad(`${at}: table "${name}" is listed twice (tables[${twin}])`);
    names.set(name, i);
    if (
      typeof number !== 'number' ||
      !Number.isInteger(number) ||
      number < FIRST_USER_TABLE_NUMBER ||
      number > MAX_TABLE_NUMBER
    ) {
      throw bad(
        `${at}.number must be an integer from ${FIRST_USER_TABLE_NUMBER} to ${MAX_TABLE_NUMBER} (lower numbers are for system tables), got ${show(number)}`,
      );
    }
    const holder = numbers.get(number);
    if (holder !== undefined) {
      throw bad(`${at}: table number ${number} of "${name}" is also that of "${holder}"`);
    }
    numbers.set(number, name);
    if (typeof documents !== 'number' || !Number.isSafeInteger(documents) || documents < 0) {
      throw bad(`${at}.documents must be a non-negative integer, got ${show(documents)}`);
    }
    if (!Array.isArray(indexes)) throw bad(`${at}.indexes must be an array, got ${show(indexes)}`);
    const indexNames = new Set<string>();
    const checkedIndexes = indexes.map((index: unknown, k) => {
      const iat = `${at}.indexes[${k}]`;
      if (!isObject(index)) throw bad(`${iat} must be an object, got ${show(index)}`);
      if (typeof index.name !== 'string') {
        throw bad(`${iat}.name must be a string, got ${show(index.name)}`);
      }
      const fields = index.fields;
      if (!Array.isArray(fields) || !fields.every((field) => typeof field === 'string')) {
        throw bad(`${iat}.fields must be an array of strings (field paths), got ${show(fields)}`);
      }
      try {
        checkIndexName(name, index.name, fields);
      } catch (error) {
        throw bad(`${iat}: ${message(error)}`);
      }
      if (indexNames.has(index.name)) {
        throw bad(`${iat}: index "${index.name}" is listed twice for table "${name}"`);
      }
      indexNames.add(index.name);
      return { name: index.name, fields: [...fields] };
    });
    return { name, number, documents, indexes: checkedIndexes };
  });
}

/** The indexes a table of the snapshot gets (built-in ones included), keyed as the store keys them. */
function keyedIndexes(table: TableManifest): KeyedIndex[] {
  return [
    { name: BY_ID, fields: [] as string[] },
    { name: BY_CREATION_TIME, fields: [] as string[] },
    ...table.indexes,
  ].map((index) => ({
    table: table.name,
    name: index.name,
    fields: indexKeyFields(index.name, index.fields),
  }));
}

/**
 * One document line, checked as the store would check it on insert (`checkDocument`: field
 * names, values, limits; and the size of its key in each index), plus what only a snapshot can
 * get wrong: an id of another table.
 */
function parseDocument(
  file: string,
  line: number,
  text: string,
  table: TableManifest,
  indexes: readonly KeyedIndex[],
): Document {
  const at = `${file}:${line}`;
  let value: Value;
  try {
    value = jsonToConvex(JSON.parse(text) as JSONValue);
  } catch (error) {
    throw new CliError(`${at}: not a Convex document: ${message(error)}`);
  }
  if (!isObject(value) || value instanceof ArrayBuffer) {
    throw new CliError(`${at}: a document must be a JSON object, got ${show(JSON.parse(text))}`);
  }
  const document = value as Record<string, Value>;
  const id = document._id;
  if (id === undefined) throw new CliError(`${at}: the document has no _id`);
  const number = typeof id === 'string' ? tableNumberOfId(id) : null;
  if (typeof id !== 'string' || number === null) {
    throw new CliError(`${at}: _id ${show(id)} is not a Sleigh document id`);
  }
  if (number !== table.number) {
    throw new CliError(
      `${at}: _id ${id} belongs to table number ${number}, not to "${table.name}" (${table.number})`,
    );
  }
  const creationTime = document._creationTime;
  if (typeof creationTime !== 'number' || !Number.isFinite(creationTime)) {
    throw new CliError(`${at}: _creationTime must be a finite number, got ${show(creationTime)}`);
  }
  try {
    checkDocument(table.name, document);
    for (const index of indexes) checkedIndexKey(index, document as Document);
  } catch (error) {
    if (StorageError.is(error)) throw new CliError(`${at}: ${error.message}`);
    throw error;
  }
  return document as Document;
}

/** The documents of one table's file, streaming, with their line numbers (blank lines skipped). */
export async function* readDocuments(
  dir: string,
  table: TableManifest,
): AsyncGenerator<{ line: number; document: Document }> {
  const file = join(dir, `${table.name}.jsonl`);
  try {
    if (!statSync(file).isFile()) throw new CliError(`${file} is not a file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError(
        `${file} is missing from the snapshot (tables.json lists table "${table.name}")`,
      );
    }
    throw new CliError(`Cannot read ${file}: ${message(error)}`);
  }
  const input = createReadStream(file);
  const lines = createInterface({ input, crlfDelay: Infinity });
  const indexes = keyedIndexes(table);
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === '') continue;
      yield { line, document: parseDocument(file, line, text, table, indexes) };
    }
  } catch (error) {
    if (isSystemError(error)) throw new CliError(`Cannot read ${file}: ${error.message}`);
    throw error;
  } finally {
    lines.close();
    input.destroy();
  }
}

export function countMismatch(dir: string, table: TableManifest, found: number): CliError {
  return new CliError(
    `${join(dir, `${table.name}.jsonl`)} holds ${found} documents but ${join(dir, 'tables.json')} says ${table.documents}; the snapshot is incomplete or was edited`,
  );
}

/**
 * Reads a whole snapshot and refuses it (a CliError naming the file, and the line for a
 * document) unless every table and document in it can be imported. Streams: memory holds one
 * document at a time, plus the ids of the table being read (to find duplicates; roughly 100 MB
 * for a table of a million documents). Ids of different tables cannot collide: each carries its
 * table's number, checked here, and numbers are distinct.
 */
export async function checkSnapshot(path: string, output: Output): Promise<CheckedSnapshot> {
  const dir = resolve(path);
  const tables = readManifest(dir);
  let documents = 0;
  for (const table of tables) {
    const progress = new Progress(output, `Checking ${table.name}`, table.documents);
    const lines = new Map<string, number>();
    for await (const { line, document } of readDocuments(dir, table)) {
      const first = lines.get(document._id);
      if (first !== undefined) {
        throw new CliError(
          `${join(dir, `${table.name}.jsonl`)}:${line}: _id ${document._id} appears twice in the snapshot (first at line ${first})`,
        );
      }
      lines.set(document._id, line);
      progress.update(lines.size);
    }
    if (lines.size !== table.documents) throw countMismatch(dir, table, lines.size);
    progress.done();
    documents += lines.size;
  }
  return { dir, tables, documents };
}

/**
 * Reads the snapshot's tables that the store's schema validates (`enforced`, by table) and
 * refuses the first document that does not match, naming its file and line: an import must
 * not bring in what a mutation could not have written. A store that has not applied a schema
 * is checked by the first `sleigh serve` instead, which validates every table then.
 */
export async function checkAgainstSchema(
  checked: CheckedSnapshot,
  enforced: ReadonlyMap<string, ValidatorJSON>,
  tableNumbers: ReadonlyMap<string, number>,
  output: Output,
): Promise<void> {
  const isId = (id: string, table: string) => {
    const number = tableNumberOfId(id);
    return number !== null && tableNumbers.get(table) === number;
  };
  for (const table of checked.tables) {
    const type = enforced.get(table.name);
    if (type === undefined) continue;
    const progress = new Progress(
      output,
      `Checking ${table.name} against the schema`,
      table.documents,
    );
    let count = 0;
    for await (const { line, document } of readDocuments(checked.dir, table)) {
      const mismatch = documentMismatch(type, document, isId);
      if (mismatch !== null) {
        throw new CliError(
          `${join(checked.dir, `${table.name}.jsonl`)}:${line}: document ${document._id} does not match the schema this store holds table "${table.name}" to: ${mismatch}. Fix the document, or deploy a schema that accepts it before importing`,
        );
      }
      progress.update(++count);
    }
    progress.done();
  }
}
