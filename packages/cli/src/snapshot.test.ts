/**
 * `sleigh export` and `sleigh import` when things go wrong: a snapshot that is malformed, edited
 * or incomplete is refused before anything is written; a write that fails midway is undone so
 * the import can be retried; an export of a location that holds no store refuses instead of
 * creating one. Every test that opens a store runs on both drivers; the checks of a snapshot's
 * content, which refuse it before any store is opened, run once (on SQLite's arguments).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  derivedDocumentId,
  newDocumentId,
  StorageError,
  StorageErrorCode,
  type Document,
  type ReadTransaction,
  type Store,
  type WriteTransaction,
} from '@sleigh/storage';
import { openPostgresStore, PostgresStore } from '@sleigh/storage-postgres';
import { openSqliteStore } from '@sleigh/storage-sqlite';
import { databaseUrl, tempDir } from '@sleigh/testing';
import { convexToJson, type JSONValue } from 'convex/values';
import { describe, expect, it, onTestFinished } from 'vitest';
import { exportSnapshot, importSnapshot } from './snapshot/index.js';
import { capture, project, sleigh, sleighInProcess } from './test-processes.js';

/** A refusal: exit code 1, a message, and never a stack trace. */
function expectRefusal(result: { code: number; output: string }, message: RegExp): void {
  expect(result.output).toMatch(message);
  expect(result.output).not.toMatch(/TypeError|\n\s+at /);
  expect(result.code).toBe(1);
}

type Driver = 'sqlite' | 'postgres';

/** Where a store lives, as `sleigh` arguments, and how a test opens it itself. */
interface Target {
  readonly args: string[];
  /** The data directory (SQLite) or the schema (PostgreSQL). */
  readonly place: string;
  /** True when the SQLite file or the PostgreSQL schema exists. */
  exists(): Promise<boolean>;
  /** Opens (creating if need be) the store; closed when the test ends. */
  open(): Promise<Store>;
}

function target(driver: Driver): Target {
  const open = async (make: () => Promise<Store>) => {
    const store = await make();
    onTestFinished(() => store.close());
    return store;
  };
  if (driver === 'sqlite') {
    const dataDir = join(tempDir('sleigh-snapshot-'), 'data');
    const file = join(dataDir, 'sleigh.sqlite');
    return {
      args: ['--data-dir', dataDir],
      place: dataDir,
      exists: async () => existsSync(file),
      open: () =>
        open(async () => {
          mkdirSync(dataDir, { recursive: true });
          return openSqliteStore({ path: file });
        }),
    };
  }
  const schema = `snap_${randomBytes(6).toString('hex')}`;
  onTestFinished(() => PostgresStore.dropSchema(databaseUrl(), schema));
  return {
    args: ['--db', databaseUrl(), '--schema', schema],
    place: schema,
    exists: async () => (await PostgresStore.inspectSchema(databaseUrl(), schema)) !== 'absent',
    open: () => open(() => openPostgresStore({ connectionString: databaseUrl(), schema })),
  };
}

async function count(store: Store, table: string): Promise<number | null> {
  return store.read(async (tx) =>
    tx.catalog().table(table) === undefined ? null : tx.count(table),
  );
}

const MESSAGES = 10001;
const USERS = 10002;
const T0 = 1_700_000_000_000;

interface TableSpec {
  readonly name: string;
  readonly number: number;
  readonly documents: JSONValue[];
  readonly indexes?: Array<{ name: string; fields: string[] }>;
}

/** Documents with ids derived from their position: the same on every call. */
function messages(n: number): JSONValue[] {
  return Array.from({ length: n }, (_, i) => ({
    _id: derivedDocumentId(MESSAGES, `message ${i}`),
    _creationTime: T0 + i + 0.5,
    channel: `c${i % 3}`,
    body: `message ${i}`,
  }));
}

function users(n: number): JSONValue[] {
  return Array.from({ length: n }, (_, i) => ({
    _id: derivedDocumentId(USERS, `user ${i}`),
    _creationTime: T0 + i + 0.25,
    name: `user ${i}`,
  }));
}

/** The usual snapshot: 1,500 messages (more than one write batch) and 10 users. */
function standardTables(): TableSpec[] {
  return [
    {
      name: 'messages',
      number: MESSAGES,
      documents: messages(1500),
      indexes: [{ name: 'by_channel', fields: ['channel'] }],
    },
    { name: 'users', number: USERS, documents: users(10) },
  ];
}

function writeSnapshot(tables: TableSpec[]): string {
  const dir = join(tempDir('sleigh-snapshot-'), 'snapshot');
  mkdirSync(dir);
  const manifest = {
    format: 'sleigh-snapshot',
    version: 1,
    ts: '1',
    exportedAt: new Date(T0).toISOString(),
    tables: tables.map((table) => ({
      name: table.name,
      number: table.number,
      documents: table.documents.length,
      indexes: table.indexes ?? [],
    })),
  };
  writeFileSync(join(dir, 'tables.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  for (const table of tables) {
    writeFileSync(
      join(dir, `${table.name}.jsonl`),
      table.documents.map((document) => `${JSON.stringify(document)}\n`).join(''),
    );
  }
  return dir;
}

/** Replaces line `line` (1-based) of a file; returns the line that was there. */
function replaceLine(file: string, line: number, text: string): string {
  const lines = readFileSync(file, 'utf8').split('\n');
  const before = lines[line - 1]!;
  lines[line - 1] = text;
  writeFileSync(file, lines.join('\n'));
  return before;
}

function editManifest(
  dir: string,
  edit: (manifest: { tables: Array<Record<string, unknown>> }) => unknown,
): void {
  const file = join(dir, 'tables.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as {
    tables: Array<Record<string, unknown>>;
  };
  const edited = edit(manifest);
  writeFileSync(file, JSON.stringify(edited === undefined ? manifest : edited));
}

/** Forwards to `target`, binding methods, except for what `override` returns a value for. */
function wrap<T extends object>(target: T, override: (name: string | symbol) => unknown): T {
  return new Proxy(target, {
    get(object, name) {
      const replaced = override(name);
      if (replaced !== undefined) return replaced;
      const value = Reflect.get(object, name) as unknown;
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(object)
        : value;
    },
  });
}

/** A store whose inserts into `table` fail as a lost connection would. */
function failingInserts(store: Store, table: string): Store {
  const lost = () =>
    new StorageError(StorageErrorCode.Unavailable, 'the database connection was lost');
  return wrap(store, (name) =>
    name === 'write'
      ? <T>(fn: (tx: WriteTransaction) => Promise<T>) =>
          store.write((tx) =>
            fn(
              wrap(tx, (method) =>
                method === 'insert' || method === 'insertMany'
                  ? async (into: string, documents: Document | Document[]) => {
                      if (into === table) throw lost();
                      return method === 'insert'
                        ? tx.insert(into, documents as Document)
                        : tx.insertMany(into, documents as Document[]);
                    }
                  : undefined,
              ),
            ),
          )
      : undefined,
  );
}

/** A store whose scans of `table` fail. */
function failingScans(store: Store, table: string): Store {
  return wrap(store, (name) =>
    name === 'read'
      ? <T>(fn: (tx: ReadTransaction) => Promise<T>) =>
          store.read((tx) =>
            fn(
              wrap(tx, (method) =>
                method === 'scan'
                  ? async (request: { table: string }) => {
                      if (request.table === table) {
                        throw new StorageError(StorageErrorCode.Unavailable, 'the disk went away');
                      }
                      return tx.scan(request as Parameters<ReadTransaction['scan']>[0]);
                    }
                  : undefined,
              ),
            ),
          )
      : undefined,
  );
}

describe.each(['sqlite', 'postgres'] as const)('sleigh import on %s', (driver) => {
  it('refuses a snapshot whose second table has a bad line, writes nothing, and the retry succeeds', async () => {
    const where = target(driver);
    const store = await where.open();
    const snapshot = writeSnapshot(standardTables());
    const file = join(snapshot, 'users.jsonl');
    const good = replaceLine(file, 7, '{"_id": "oops", ');

    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      new RegExp(`${file.replace(/[.\\]/g, '\\$&')}:7: not a Convex document`),
    );
    expect(await count(store, 'messages')).toBeNull();
    expect(await count(store, 'users')).toBeNull();

    replaceLine(file, 7, good);
    const retried = await sleighInProcess(['import', snapshot, ...where.args]);
    expect(retried.output).toMatch(`Imported 1510 documents from ${snapshot}`);
    expect(retried.code).toBe(0);
    const check = await where.open();
    expect(await count(check, 'messages')).toBe(1500);
    expect(await count(check, 'users')).toBe(10);
    expect(check.catalog().index('messages', 'by_channel')?.fields).toEqual([
      'channel',
      '_creationTime',
      '_id',
    ]);
  });

  it('refuses a snapshot missing a table file, writes nothing, and the retry succeeds', async () => {
    const where = target(driver);
    const store = await where.open();
    const snapshot = writeSnapshot(standardTables());
    const file = join(snapshot, 'users.jsonl');
    const content = readFileSync(file, 'utf8');
    writeFileSync(file, '');
    // An empty file is not the 10 documents tables.json announces.
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /users\.jsonl holds 0 documents but .*tables\.json says 10/,
    );
    // Nor is no file at all.
    rmSync(file);
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /users\.jsonl is missing from the snapshot/,
    );
    expect(await count(store, 'messages')).toBeNull();
    writeFileSync(file, content);
    expect((await sleighInProcess(['import', snapshot, ...where.args])).code).toBe(0);
    const check = await where.open();
    expect(await count(check, 'messages')).toBe(1500);
    expect(await count(check, 'users')).toBe(10);
  });

  it('undoes what it wrote when a write fails midway, so the retry succeeds', async () => {
    const where = target(driver);
    const store = await where.open();
    const snapshot = writeSnapshot(standardTables());
    const error = await importSnapshot(failingInserts(store, 'users'), snapshot, capture()).then(
      () => null,
      (thrown: unknown) => thrown as Error,
    );
    expect(error?.name).toBe('CliError');
    expect(error?.message).toMatch(/the database connection was lost/);
    expect(error?.message).toMatch(/removed the 1500 documents it had written/);
    // The tables stay (a store cannot drop tables) but hold nothing; the index it made is gone.
    expect(await count(store, 'messages')).toBe(0);
    expect(await count(store, 'users')).toBe(0);
    expect(store.catalog().index('messages', 'by_channel')).toBeUndefined();

    expect(await importSnapshot(store, snapshot, capture())).toBe(1510);
    expect(await count(store, 'messages')).toBe(1500);
    expect(await count(store, 'users')).toBe(10);
    expect(store.catalog().index('messages', 'by_channel')).toBeDefined();
    const first = (standardTables()[0]!.documents[0] as { _id: string })._id;
    expect(await store.read((tx) => tx.get('messages', first))).toMatchObject({
      _id: first,
      _creationTime: T0 + 0.5,
      body: 'message 0',
    });
    // And the CLI agrees: a store with the data refuses a second import.
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /Table "messages" already has documents; import needs an empty store/,
    );
  });

  it('refuses a table whose name exists here under another number (its ids would not resolve)', async () => {
    const where = target(driver);
    const store = await where.open();
    await store.write(async (tx) => {
      await tx.createTable('messages', { number: 10007 });
    });
    const snapshot = writeSnapshot(standardTables());
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /Table "messages" has number 10007 here but 10001 in the snapshot/,
    );
    const check = await where.open();
    expect(await count(check, 'messages')).toBe(0);
    expect(check.catalog().table('users')).toBeUndefined();
  });

  it('refuses a snapshot folder that does not exist before creating the store', async () => {
    const where = target(driver);
    const missing = join(tempDir('sleigh-snapshot-'), 'nowhere');
    expectRefusal(
      await sleighInProcess(['import', missing, ...where.args]),
      /nowhere does not exist/,
    );
    expect(await where.exists()).toBe(false);
    if (driver === 'sqlite') expect(existsSync(where.place)).toBe(false);
  });

  it('refuses a bad snapshot before creating the store', async () => {
    const where = target(driver);
    const snapshot = writeSnapshot(standardTables());
    replaceLine(join(snapshot, 'messages.jsonl'), 1200, '[1, 2]');
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /messages\.jsonl:1200: a document must be a JSON object/,
    );
    expect(await where.exists()).toBe(false);
    if (driver === 'sqlite') expect(existsSync(where.place)).toBe(false);
  });

  it('round-trips a store through export and import, int64, bytes and indexes included', async () => {
    const source = target(driver);
    const from = await source.open();
    const special = {
      _id: newDocumentId(MESSAGES, T0 + 5000),
      _creationTime: T0 + 5000.5,
      channel: 'edge',
      body: 'values',
      big: -(2n ** 63n),
      blob: new Uint8Array([0, 255]).buffer,
      nested: { list: [1, 'two', null, false] },
    };
    await from.write(async (tx) => {
      for (const table of standardTables()) {
        await tx.createTable(table.name, { number: table.number });
        for (const index of table.indexes ?? []) {
          await tx.createIndex(table.name, index.name, index.fields);
        }
        await tx.insertMany(table.name, table.documents as Document[]);
      }
      await tx.insert('messages', special);
    });
    await from.close();
    const snapshot = join(tempDir('sleigh-snapshot-'), 'out', 'snap');
    const exported = await sleighInProcess(['export', ...source.args, '--path', snapshot]);
    expect(exported.output).toMatch(`Exported 1511 documents from 2 tables to ${snapshot}`);
    expect(exported.code).toBe(0);
    expect(readdirSync(snapshot).sort()).toEqual(['messages.jsonl', 'tables.json', 'users.jsonl']);

    const destination = target(driver);
    const imported = await sleighInProcess(['import', snapshot, ...destination.args]);
    expect(imported.output).toMatch(`Imported 1511 documents from ${snapshot}`);
    expect(imported.code).toBe(0);
    const to = await destination.open();
    expect(await count(to, 'messages')).toBe(1501);
    expect(await count(to, 'users')).toBe(10);
    expect(to.catalog().table('users')?.number).toBe(USERS);
    expect(to.catalog().index('messages', 'by_channel')).toBeDefined();
    const restored = await to.read((tx) => tx.get('messages', special._id));
    expect(restored).not.toBeNull();
    expect(convexToJson(restored)).toEqual(convexToJson(special));
  });
});

describe.each(['sqlite', 'postgres'] as const)('sleigh import interrupted on %s', (driver) => {
  /** 10 users, then 100,000 messages: a signal once the users are in lands mid-write. */
  const bigSnapshot = () =>
    writeSnapshot([
      { name: 'users', number: USERS, documents: users(10) },
      { name: 'messages', number: MESSAGES, documents: messages(100_000) },
    ]);

  /** `sleigh import`, a real process, sent `signal` while it writes the messages. */
  async function interrupted(snapshot: string, where: Target, signal: NodeJS.Signals) {
    const running = await sleigh(['import', snapshot, ...where.args], tempDir('sleigh-cwd-'));
    await running.waitFor(/Importing users: 10 documents/, 60_000);
    const code = await running.stop(signal);
    return { code, output: running.output() };
  }

  it('undoes a Ctrl-C (SIGINT) into a new store, leaving no store behind, and the retry succeeds', async () => {
    const where = target(driver);
    const snapshot = bigSnapshot();
    const { code, output } = await interrupted(snapshot, where, 'SIGINT');
    expect(output).toMatch(/Import interrupted \(SIGINT\) while writing table "messages"/);
    expect(output).toMatch(/Nothing was kept/);
    expect(output).not.toMatch(/Imported/);
    expect(code).toBe(130);
    // The store did not exist before: none is left for a server to start on.
    expect(await where.exists()).toBe(false);
    const retried = await sleighInProcess(['import', snapshot, ...where.args]);
    expect(retried.output).toMatch(`Imported 100010 documents from ${snapshot}`);
    const check = await where.open();
    expect(await count(check, 'messages')).toBe(100_000);
  });

  it('undoes a SIGTERM into an existing empty store, and the retry succeeds', async () => {
    const where = target(driver);
    await (await where.open()).close();
    const snapshot = bigSnapshot();
    const { code, output } = await interrupted(snapshot, where, 'SIGTERM');
    expect(output).toMatch(/Import interrupted \(SIGTERM\) while writing table "messages"/);
    expect(code).toBe(143);
    const store = await where.open();
    expect(await count(store, 'users')).toBe(0);
    expect(await count(store, 'messages')).toBe(0);
    await store.close();
    expect((await sleighInProcess(['import', snapshot, ...where.args])).code).toBe(0);
    const check = await where.open();
    expect(await count(check, 'users')).toBe(10);
    expect(await count(check, 'messages')).toBe(100_000);
  });
});

describe.each(['sqlite', 'postgres'] as const)('sleigh export on %s', (driver) => {
  it('refuses a location that holds no store, and creates none', async () => {
    const where = target(driver);
    const snapshot = join(tempDir('sleigh-snapshot-'), 'snap');
    expectRefusal(
      await sleighInProcess(['export', ...where.args, '--path', snapshot]),
      driver === 'sqlite'
        ? /No Sleigh data at SQLite .*sleigh\.sqlite/
        : new RegExp(`No Sleigh data at PostgreSQL .*\\(schema ${where.place}\\)`),
    );
    expect(await where.exists()).toBe(false);
    if (driver === 'sqlite') expect(existsSync(where.place)).toBe(false);
    expect(existsSync(snapshot)).toBe(false);
  });

  it('removes the half-written snapshot folder when the export fails midway', async () => {
    const where = target(driver);
    const store = await where.open();
    await store.write(async (tx) => {
      for (const table of standardTables()) {
        await tx.createTable(table.name, { number: table.number });
        await tx.insertMany(table.name, table.documents as Document[]);
      }
    });
    const parent = tempDir('sleigh-snapshot-');
    const snapshot = join(parent, 'new', 'folders', 'snap');
    await expect(exportSnapshot(failingScans(store, 'users'), snapshot, capture())).rejects.toThrow(
      /the disk went away/,
    );
    expect(readdirSync(parent)).toEqual([]);
    // And a working export afterwards writes it all.
    const manifest = await exportSnapshot(store, snapshot, capture());
    expect(manifest.tables.map((table) => table.documents)).toEqual([1500, 10]);
  });

  it('refuses a --path whose parent is a file, with a message and no stack trace', async () => {
    const where = target(driver);
    const store = await where.open();
    await store.close();
    const parent = tempDir('sleigh-snapshot-');
    writeFileSync(join(parent, 'file'), 'not a folder');
    expectRefusal(
      await sleighInProcess(['export', ...where.args, '--path', join(parent, 'file', 'snap')]),
      /Cannot create the snapshot folder .*file[/\\]snap: ENOTDIR/,
    );
    expect(readdirSync(parent)).toEqual(['file']);
  });
});

describe('sleigh export: an unwritable --path', () => {
  // Root writes anywhere: there the ENOTDIR test above stands for this one.
  it.skipIf(process.getuid?.() === 0)('is refused with a message and no stack trace', async () => {
    const where = target('sqlite');
    await (await where.open()).close();
    const parent = tempDir('sleigh-snapshot-');
    chmodSync(parent, 0o555);
    onTestFinished(() => chmodSync(parent, 0o755));
    expectRefusal(
      await sleighInProcess(['export', ...where.args, '--path', join(parent, 'snap')]),
      /Cannot create the snapshot folder .*snap: EACCES/,
    );
  });
});

/** Stands for a tables.json that is a JSON array (an array in `cases` means `tables`). */
const WHOLE_ARRAY = Symbol('[]');

describe('sleigh import: the manifest is checked', () => {
  const table = { name: 'messages', number: MESSAGES, documents: 0, indexes: [] };
  const cases: Array<[string, unknown, RegExp]> = [
    ['null', null, /tables\.json: must be a JSON object, got null/],
    ['an array', WHOLE_ARRAY, /tables\.json: must be a JSON object, got an array/],
    [
      'another format',
      { format: 'other', version: 1, tables: [] },
      /not a version 1 Sleigh snapshot/,
    ],
    ['no tables', { format: 'sleigh-snapshot', version: 1 }, /"tables" must be an array/],
    ['a null table', [null], /tables\[0\] must be an object/],
    [
      'a table without a name',
      [{ ...table, name: undefined }],
      /tables\[0\]\.name must be a string/,
    ],
    ['a numeric name', [{ ...table, name: 7 }], /tables\[0\]\.name must be a string/],
    [
      'an invalid name',
      [{ ...table, name: 'bad-name' }],
      /tables\[0\]\.name: Invalid table name "bad-name"/,
    ],
    ['a path as name', [{ ...table, name: '../escape' }], /Invalid table name "\.\.\/escape"/],
    [
      'a system table',
      [{ ...table, name: '_scheduled_functions' }],
      /tables\[0\]\.name "_scheduled_functions" is a system table/,
    ],
    [
      'a string number',
      [{ ...table, number: '10001' }],
      /tables\[0\]\.number must be an integer from 10001/,
    ],
    [
      'a fractional number',
      [{ ...table, number: 10001.5 }],
      /tables\[0\]\.number must be an integer/,
    ],
    ['a negative number', [{ ...table, number: -3 }], /tables\[0\]\.number must be an integer/],
    [
      'a system number',
      [{ ...table, number: 3 }],
      /tables\[0\]\.number must be an integer from 10001 .*got 3/,
    ],
    [
      'no document count',
      [{ ...table, documents: undefined }],
      /tables\[0\]\.documents must be a non-negative integer/,
    ],
    [
      'a negative count',
      [{ ...table, documents: -1 }],
      /tables\[0\]\.documents must be a non-negative integer/,
    ],
    ['no indexes', [{ ...table, indexes: undefined }], /tables\[0\]\.indexes must be an array/],
    [
      'an index without fields',
      [{ ...table, indexes: [{ name: 'by_x' }] }],
      /tables\[0\]\.indexes\[0\]\.fields must be an array of strings/,
    ],
    [
      'an index of numbers',
      [{ ...table, indexes: [{ name: 'by_x', fields: [1] }] }],
      /indexes\[0\]\.fields must be an array of strings/,
    ],
    [
      'a built-in index name',
      [{ ...table, indexes: [{ name: 'by_id', fields: ['a'] }] }],
      /indexes\[0\]: Index name "by_id" .* is reserved/,
    ],
    [
      'an index named twice',
      [
        {
          ...table,
          indexes: [
            { name: 'by_a', fields: ['a'] },
            { name: 'by_a', fields: ['b'] },
          ],
        },
      ],
      /indexes\[1\]: index "by_a" is listed twice/,
    ],
    [
      'a table named twice',
      [table, { ...table, number: USERS }],
      /tables\[1\]: table "messages" is listed twice/,
    ],
    [
      'a number used twice',
      [table, { ...table, name: 'users' }],
      /tables\[1\]: table number 10001 of "users" is also that of "messages"/,
    ],
  ];

  it.each(cases)(
    'refuses %s, naming tables.json, before creating the store',
    async (_, tables, message) => {
      const snapshot = writeSnapshot([]);
      editManifest(snapshot, (manifest) =>
        Array.isArray(tables) ? { ...manifest, tables } : tables === WHOLE_ARRAY ? [] : tables,
      );
      const where = target('sqlite');
      const result = await sleighInProcess(['import', snapshot, ...where.args]);
      expectRefusal(result, message);
      expect(result.output).toContain(join(snapshot, 'tables.json'));
      expect(await where.exists()).toBe(false);
    },
  );

  it('refuses a tables.json that is not JSON', async () => {
    const snapshot = writeSnapshot([]);
    writeFileSync(join(snapshot, 'tables.json'), '{"format": ');
    const where = target('sqlite');
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /tables\.json is not valid JSON/,
    );
    expect(existsSync(where.place)).toBe(false);
  });
});

describe('sleigh import: every document is checked', () => {
  const other = newDocumentId(USERS, T0);
  const first = (messages(1)[0] as { _id: string })._id;
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"_id": ', /:3: not a Convex document/],
    ['an array', '[1, 2]', /:3: a document must be a JSON object/],
    ['a string', '"text"', /:3: a document must be a JSON object/],
    ['no _id', `{"_creationTime": 1, "body": "x"}`, /:3: the document has no _id/],
    [
      'a malformed _id',
      `{"_id": "abc", "_creationTime": 1}`,
      /:3: _id "abc" is not a Sleigh document id/,
    ],
    [
      'an _id of another table',
      `{"_id": "${other}", "_creationTime": 1}`,
      /:3: _id \S+ belongs to table number 10002, not to "messages" \(10001\)/,
    ],
    [
      'a string _creationTime',
      `{"_id": "${newDocumentId(MESSAGES)}", "_creationTime": "today"}`,
      /:3: _creationTime must be a finite number/,
    ],
    [
      'no _creationTime',
      `{"_id": "${newDocumentId(MESSAGES)}"}`,
      /:3: _creationTime must be a finite number/,
    ],
    [
      'a duplicate _id',
      `{"_id": "${first}", "_creationTime": 1}`,
      /:3: _id \S+ appears twice in the snapshot \(first at line 1\)/,
    ],
    [
      'a reserved field name',
      `{"_id": "${newDocumentId(MESSAGES)}", "_creationTime": 1, "_secret": 1}`,
      /:3: Table "messages": field name "_secret" starts with "_"/,
    ],
    [
      'a $ field name',
      `{"_id": "${newDocumentId(MESSAGES)}", "_creationTime": 1, "$x": 1}`,
      /:3: not a Convex document: Field name \$x/,
    ],
    [
      'too deep a value',
      `{"_id": "${newDocumentId(MESSAGES)}", "_creationTime": 1, "a": ${'['.repeat(20)}${']'.repeat(20)}}`,
      /:3: Table "messages": field "a.*" is nested more than 16 levels/,
    ],
  ];

  it.each(cases)(
    'refuses %s, naming file:line, before creating the store',
    async (_, line, message) => {
      const snapshot = writeSnapshot([
        { name: 'messages', number: MESSAGES, documents: messages(5) },
      ]);
      const file = join(snapshot, 'messages.jsonl');
      replaceLine(file, 3, line);
      const where = target('sqlite');
      const result = await sleighInProcess(['import', snapshot, ...where.args]);
      expectRefusal(result, message);
      expect(result.output).toContain(`${file}:3`);
      expect(await where.exists()).toBe(false);
    },
  );

  it('refuses an indexed value too long to index before creating the store (PostgreSQL)', async () => {
    // A store on SQLite used to take it; PostgreSQL refused it midway through the import.
    const snapshot = writeSnapshot([
      {
        name: 'messages',
        number: MESSAGES,
        documents: messages(5),
        indexes: [{ name: 'by_channel', fields: ['channel'] }],
      },
    ]);
    const file = join(snapshot, 'messages.jsonl');
    const channel = randomBytes(3000).toString('base64');
    replaceLine(
      file,
      3,
      JSON.stringify({ _id: newDocumentId(MESSAGES), _creationTime: 1, channel, body: 'x' }),
    );
    const where = target('postgres');
    const result = await sleighInProcess(['import', snapshot, ...where.args]);
    expectRefusal(
      result,
      /:3: Table "messages": index "by_channel" key is \d+ bytes, over the limit of 2048 bytes/,
    );
    expect(result.output).toContain(`${file}:3`);
    expect(await where.exists()).toBe(false);
  });

  it('refuses a count that differs from the manifest', async () => {
    const snapshot = writeSnapshot([
      { name: 'messages', number: MESSAGES, documents: messages(5) },
    ]);
    editManifest(snapshot, (manifest) => {
      manifest.tables[0]!.documents = 6;
    });
    const where = target('sqlite');
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /messages\.jsonl holds 5 documents but .*tables\.json says 6/,
    );
    expect(await where.exists()).toBe(false);
  });
});

describe('sleigh import on PostgreSQL', () => {
  it('refuses a schema that a running server uses, and imports once it stopped', async () => {
    const where = target('postgres');
    const server = await sleigh(['serve', 'convex', '--port', '0', ...where.args], project());
    expect(server.url).not.toBe('');
    // The server's own (empty) tables, under their numbers: importable into this schema.
    const snapshot = join(tempDir('sleigh-snapshot-'), 'snap');
    expect((await sleighInProcess(['export', '--path', snapshot, ...where.args])).code).toBe(0);
    expectRefusal(
      await sleighInProcess(['import', snapshot, ...where.args]),
      /Sleigh servers are running on PostgreSQL .* \(schema snap_\w+\); stop them before importing/,
    );
    expect(await server.stop()).toBe(0);
    expect(await sleighInProcess(['import', snapshot, ...where.args])).toMatchObject({ code: 0 });
  });
});

describe.each(['sqlite', 'postgres'] as const)(
  'sleigh import into a deployment on %s',
  (driver) => {
    it('refuses documents the schema it applied would not accept, before writing any', async () => {
      // A server started with the same schema checks nothing again (only what changed), so the
      // import itself must hold the store's tables to the schema they were applied with.
      const where = target(driver);
      const app = project();
      const serve = () => sleigh(['serve', 'convex', '--port', '0', ...where.args], app);
      const first = await serve();
      expect(first.url, first.output()).not.toBe('');
      expect(await first.stop(), first.output()).toBe(0);
      const exported = join(tempDir('sleigh-snapshot-'), 'empty');
      expect((await sleighInProcess(['export', '--path', exported, ...where.args])).code).toBe(0);
      const manifest = JSON.parse(readFileSync(join(exported, 'tables.json'), 'utf8')) as {
        tables: Array<{
          name: string;
          number: number;
          indexes: Array<{ name: string; fields: string[] }>;
        }>;
      };
      const table = (name: string) => manifest.tables.find((entry) => entry.name === name)!;
      const message = (i: number) => ({
        _id: derivedDocumentId(table('messages').number, `message ${i}`),
        _creationTime: T0 + i,
        channel: 'general',
        author: `author ${i}`,
        body: `hello ${i}`,
      });
      const big = {
        _id: derivedDocumentId(table('values').number, 'big'),
        _creationTime: T0,
        label: 'big',
        big: convexToJson(2n ** 60n),
      };
      const snapshot = writeSnapshot([
        { ...table('messages'), documents: [message(0), message(1), message(2)] },
        { ...table('values'), documents: [big] },
      ]);
      const file = join(snapshot, 'messages.jsonl');
      const { author: _, ...authorless } = message(1);
      const good = replaceLine(file, 2, JSON.stringify(authorless));

      const refused = await sleighInProcess(['import', snapshot, ...where.args]);
      expectRefusal(
        refused,
        /messages\.jsonl:2: document \S+ does not match the schema this store holds table "messages" to: .*author/,
      );
      expect(refused.output).toContain(`${file}:2`);
      const store = await where.open();
      expect(await count(store, 'messages')).toBe(0);
      expect(await count(store, 'values')).toBe(0);
      await store.close();

      replaceLine(file, 2, good);
      const imported = await sleighInProcess(['import', snapshot, ...where.args]);
      expect(imported.output).toMatch(`Imported 4 documents from ${snapshot}`);
      expect(imported.code).toBe(0);
      // What it took, the server serves on the same schema.
      const second = await serve();
      expect(second.url, second.output()).not.toBe('');
      expect(await second.stop(), second.output()).toBe(0);
    });
  },
);
