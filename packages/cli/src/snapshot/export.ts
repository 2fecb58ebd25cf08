/** `sleigh export`: see format.ts for the snapshot's layout. */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BY_CREATION_TIME, BY_ID, keySuccessor, StorageError, type Store } from '@sleigh/storage';
import { CliError, type Output } from '../context.js';
import { Progress } from '../progress.js';
import { isSystemError, type Manifest, message, PAGE, type TableManifest } from './format.js';

export async function exportSnapshot(
  store: Store,
  path: string,
  output: Output,
): Promise<Manifest> {
  const dir = resolve(path);
  if (existsSync(dir)) throw new CliError(`${dir} already exists; choose a new --path`);
  let created: string | undefined;
  try {
    // The first folder it had to create: `dir` itself, or the top of the missing parents.
    created = mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new CliError(`Cannot create the snapshot folder ${dir}: ${message(error)}`);
  }
  if (created === undefined) throw new CliError(`${dir} already exists; choose a new --path`);
  try {
    return await writeSnapshot(store, dir, output);
  } catch (error) {
    // Half a snapshot must not pass for one: remove everything this export created.
    try {
      rmSync(created, { recursive: true, force: true });
    } catch (cleanup) {
      output.err(`Could not remove the unfinished snapshot ${created}: ${message(cleanup)}`);
    }
    if (error instanceof CliError) throw error;
    if (isSystemError(error)) {
      throw new CliError(`Cannot write the snapshot to ${dir}: ${error.message}`);
    }
    if (StorageError.is(error)) {
      throw new CliError(`Export failed reading the store: ${error.message}`);
    }
    throw error;
  }
}

async function writeSnapshot(store: Store, dir: string, output: Output): Promise<Manifest> {
  return store.read(async (tx) => {
    const catalog = tx.catalog();
    const tables: TableManifest[] = [];
    for (const table of catalog
      .tables()
      .filter((t) => !t.name.startsWith('_'))
      .sort((a, b) => a.number - b.number)) {
      const total = await tx.count(table.name);
      const progress = new Progress(output, `Exporting ${table.name}`, total);
      // A page at a time, each one write: a failed write rejects here, not as a stray event.
      const file = await open(join(dir, `${table.name}.jsonl`), 'wx');
      let written = 0;
      try {
        let start: Uint8Array | undefined;
        for (;;) {
          const entries = await tx.scan({
            table: table.name,
            index: BY_CREATION_TIME,
            order: 'asc',
            limit: PAGE,
            start,
          });
          if (entries.length > 0) {
            await file.write(entries.map((entry) => `${entry.json()}\n`).join(''));
          }
          written += entries.length;
          progress.update(written);
          if (entries.length < PAGE) break;
          start = keySuccessor(entries[entries.length - 1]!.key);
        }
      } finally {
        await file.close();
      }
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
    // Last: a folder without tables.json is not a snapshot.
    const file = await open(join(dir, 'tables.json'), 'wx');
    try {
      await file.write(`${JSON.stringify(manifest, null, 2)}\n`);
    } finally {
      await file.close();
    }
    return manifest;
  });
}
