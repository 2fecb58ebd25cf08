/**
 * `sleigh export` and `sleigh import`: a snapshot of every user table as a folder of JSON
 * lines, one file per table, plus `tables.json` with each table's number and indexes (ids
 * carry the table number, so an import recreates tables under the same numbers).
 *
 *   <snapshot>/tables.json         {"format":"sleigh-snapshot","version":1,"ts":"…","tables":[…]}
 *   <snapshot>/<table>.jsonl       one Convex-encoded document per line
 *
 * Export reads one consistent snapshot. Import writes into an empty store, in batches, and
 * reproduces every document, id and _creationTime.
 */
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { BY_CREATION_TIME, BY_ID, keySuccessor, type Document, type Store } from '@sleigh/storage';
import { jsonToConvex, type JSONValue } from 'convex/values';
import { CliError, type Output } from './context.js';
import { Progress } from './progress.js';

interface TableManifest {
  readonly name: string;
  readonly number: number;
  readonly documents: number;
  readonly indexes: Array<{ name: string; fields: string[] }>;
}

interface Manifest {
  readonly format: 'sleigh-snapshot';
  readonly version: 1;
  readonly ts: string;
  readonly exportedAt: string;
  readonly tables: TableManifest[];
}

const PAGE = 1000;

export async function exportSnapshot(
  store: Store,
  path: string,
  output: Output,
): Promise<Manifest> {
  const dir = resolve(path);
  if (existsSync(dir)) throw new CliError(`${dir} already exists; choose a new --path`);
  mkdirSync(dir, { recursive: true });
  return store.read(async (tx) => {
    const catalog = tx.catalog();
    const tables: TableManifest[] = [];
    for (const table of catalog
      .tables()
      .filter((t) => !t.name.startsWith('_'))
      .sort((a, b) => a.number - b.number)) {
      const total = await tx.count(table.name);
      const progress = new Progress(output, `Exporting ${table.name}`, total);
      const file = createWriteStream(join(dir, `${table.name}.jsonl`));
      let start: Uint8Array | undefined;
      let written = 0;
      for (;;) {
        const entries = await tx.scan({
          table: table.name,
          index: BY_CREATION_TIME,
          order: 'asc',
          limit: PAGE,
          start,
        });
        for (const entry of entries) {
          if (!file.write(`${entry.json()}\n`)) await once(file, 'drain');
        }
        written += entries.length;
        progress.update(written);
        if (entries.length < PAGE) break;
        start = keySuccessor(entries[entries.length - 1]!.key);
      }
      file.end();
      await once(file, 'finish');
      progress.done();
      tables.push({
        name: table.name,
        number: table.number,
        documents: written,
        indexes: catalog
          .indexes(table.name)
          .filter((index) => index.name !== BY_ID && index.name !== BY_CREATION_TIME)
          .map((index) => ({
            name: index.name,
            fields: index.fields.filter((f) => f !== '_creationTime' && f !== '_id'),
          })),
      });
    }
    const manifest: Manifest = {
      format: 'sleigh-snapshot',
      version: 1,
      ts: (await tx.timestamp()).toString(),
      exportedAt: new Date().toISOString(),
      tables,
    };
    writeFileSync(join(dir, 'tables.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  });
}

function readManifest(dir: string): Manifest {
  const file = join(dir, 'tables.json');
  if (!existsSync(file))
    throw new CliError(`${dir} is not a Sleigh snapshot: tables.json is missing`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch (error) {
    throw new CliError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (
    manifest.format !== 'sleigh-snapshot' ||
    manifest.version !== 1 ||
    !Array.isArray(manifest.tables)
  ) {
    throw new CliError(`${file} is not a version 1 Sleigh snapshot`);
  }
  return manifest;
}

export async function importSnapshot(store: Store, path: string, output: Output): Promise<number> {
  const dir = resolve(path);
  const manifest = readManifest(dir);
  // Only into an empty store: an import must not mix with (or silently overwrite) live data.
  const catalog = store.catalog();
  for (const table of manifest.tables) {
    const existing = catalog.table(table.name);
    if (existing !== undefined && (await store.read((tx) => tx.count(table.name))) > 0) {
      throw new CliError(
        `Table "${table.name}" already has documents; import needs an empty store`,
      );
    }
    const holder = catalog.tableByNumber(table.number);
    if (holder !== undefined && holder.name !== table.name) {
      throw new CliError(
        `Table number ${table.number} belongs to "${holder.name}" here but to "${table.name}" in the snapshot; import needs an empty store`,
      );
    }
  }
  await store.write(async (tx) => {
    for (const table of manifest.tables) {
      if (tx.catalog().table(table.name) === undefined)
        await tx.createTable(table.name, { number: table.number });
      for (const index of table.indexes) {
        if (tx.catalog().index(table.name, index.name) === undefined) {
          await tx.createIndex(table.name, index.name, index.fields);
        }
      }
    }
  });
  let imported = 0;
  for (const table of manifest.tables) {
    const file = join(dir, `${table.name}.jsonl`);
    if (!existsSync(file)) throw new CliError(`${file} is missing from the snapshot`);
    const progress = new Progress(output, `Importing ${table.name}`, table.documents);
    let batch: Document[] = [];
    let line = 0;
    let count = 0;
    const flush = async () => {
      const documents = batch;
      batch = [];
      await store.write(async (tx) => {
        for (const document of documents) await tx.insert(table.name, document);
      });
      count += documents.length;
      progress.update(count);
    };
    for await (const text of createInterface({
      input: createReadStream(file),
      crlfDelay: Infinity,
    })) {
      line++;
      if (text.trim() === '') continue;
      let document: Document;
      try {
        document = jsonToConvex(JSON.parse(text) as JSONValue) as Document;
      } catch (error) {
        throw new CliError(`${file}:${line}: not a Convex document: ${(error as Error).message}`);
      }
      batch.push(document);
      if (batch.length >= PAGE) await flush();
    }
    if (batch.length > 0) await flush();
    progress.done();
    imported += count;
  }
  return imported;
}
