import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonToConvex } from 'convex/values';
import { describe, expect, it } from 'vitest';
import { LoadError } from './loader/bundle.js';
import { generateCode } from './loader/codegen.js';
import { APPS, DRIVERS, startApp } from './test-harness.js';

describe('code generation', () => {
  it('the committed _generated/ of the test apps is what codegen writes (nothing to change)', () => {
    for (const app of ['basic', 'schemaless']) {
      expect(generateCode(join(APPS, app, 'convex')), app).toEqual([]);
    }
  });

  it('types the api from the modules and the data model from the schema', () => {
    const api = readFileSync(join(APPS, 'basic', 'convex', '_generated', 'api.d.ts'), 'utf8');
    expect(api).toContain('import type * as messages from "../messages.js";');
    expect(api).toContain('"messages": typeof messages;');
    const dataModel = readFileSync(
      join(APPS, 'basic', 'convex', '_generated', 'dataModel.d.ts'),
      'utf8',
    );
    expect(dataModel).toContain('DataModelFromSchemaDefinition<typeof schema>');
    const schemaless = readFileSync(
      join(APPS, 'schemaless', 'convex', '_generated', 'dataModel.d.ts'),
      'utf8',
    );
    expect(schemaless).toContain('AnyDataModel');
  });
});

describe.each(DRIVERS)('loading on $name', (driver) => {
  it('creates tables on first insert when there is no schema, and normalizes ids per table', async () => {
    const engine = await startApp('schemaless', driver);
    const id = await engine.mutation('notes:add', { table: 'ideas', text: 'first' });
    expect(id.ok).toBe(true);
    expect(await engine.query('notes:all', { table: 'ideas' })).toMatchObject({
      ok: true,
      value: ['first'],
    });
    expect(await engine.query('notes:all', { table: 'never' })).toMatchObject({
      ok: true,
      value: [],
    });
    const idValue = id.ok ? (jsonToConvex(id.value) as string) : '';
    expect(await engine.query('notes:normalize', { table: 'ideas', id: idValue })).toMatchObject({
      value: idValue,
    });
    expect(await engine.query('notes:normalize', { table: 'other', id: idValue })).toMatchObject({
      value: null,
    });
    expect(await engine.query('notes:normalize', { table: 'ideas', id: 'garbage' })).toMatchObject({
      value: null,
    });
  });

  it('hot-reloads changed modules and keeps the data', async () => {
    const engine = await startApp('basic', driver, { copy: true });
    await engine.mutation('messages:send', { channel: 'a', author: 'x', body: 'kept' });
    appendFileSync(
      join(engine.functionsDir, 'extra.ts'),
      `import { query } from './_generated/server';\nexport const bodies = query({ args: {}, handler: async (ctx) => (await ctx.db.query('messages').collect()).map((m) => m.body.toUpperCase()) });\n`,
    );
    await engine.reload();
    expect(await engine.query('extra:bodies', {})).toMatchObject({ ok: true, value: ['KEPT'] });
    expect(engine.functions().some((f) => f.path === 'extra:bodies')).toBe(true);
  });

  // A SQLite file has one server; PostgreSQL is shared.
  it.runIf(driver.name === 'postgres')(
    'applies one schema from servers starting together on a fresh database',
    async () => {
      // Each round, three engines on one new store race to create the same tables and indexes.
      for (let round = 0; round < 3; round++) {
        const place = driver.place();
        const stores = [await place.open(), await place.open(), await place.open()];
        const engines = await Promise.all(
          stores.map((store) => startApp('basic', driver, { store })),
        );
        await engines[0]!.mutation('messages:send', {
          channel: 'a',
          author: 'x',
          body: `${round}`,
        });
        for (const engine of engines) {
          expect(await engine.query('messages:byChannel', { channel: 'a' })).toMatchObject({
            ok: true,
            value: [{ body: `${round}` }],
          });
        }
      }
    },
  );

  it('backfills an index added to the schema, and drops one removed from it', async () => {
    const engine = await startApp('basic', driver, { copy: true });
    for (const author of ['zoe', 'adam', 'mia'])
      await engine.mutation('messages:send', { channel: 'a', author, body: author });
    const schemaFile = join(engine.functionsDir, 'schema.ts');
    writeFileSync(
      schemaFile,
      readFileSync(schemaFile, 'utf8').replace(
        ".index('by_channel', ['channel'])",
        ".index('by_channel', ['channel'])\n    .index('by_author', ['author'])",
      ),
    );
    writeFileSync(
      join(engine.functionsDir, 'authors.ts'),
      `import { query } from './_generated/server';\nexport const sorted = query({ args: {}, handler: async (ctx) => (await ctx.db.query('messages').withIndex('by_author').collect()).map((m) => m.author) });\n`,
    );
    const report = await engine.reload();
    expect(report.createdIndexes).toEqual(['messages.by_author']);
    expect(await engine.query('authors:sorted', {})).toMatchObject({
      ok: true,
      value: ['adam', 'mia', 'zoe'],
    });
    writeFileSync(
      schemaFile,
      readFileSync(schemaFile, 'utf8').replace("\n    .index('by_author', ['author'])", ''),
    );
    const dropped = await engine.reload();
    expect(dropped.droppedIndexes).toEqual(['messages.by_author']);
    const gone = await engine.query('authors:sorted', {});
    expect(!gone.ok && gone.error.message).toMatch(
      /Index "by_author" not found on table "messages"/,
    );
  });

  it('refuses a schema that existing documents break, naming the document, and changes nothing', async () => {
    const engine = await startApp('basic', driver, { copy: true });
    await engine.mutation('messages:send', { channel: 'a', author: 'x', body: 'text' });
    const schemaFile = join(engine.functionsDir, 'schema.ts');
    writeFileSync(
      schemaFile,
      readFileSync(schemaFile, 'utf8')
        .replace('body: v.string(),', 'body: v.number(),')
        .replace(
          ".index('by_channel', ['channel'])",
          ".index('by_channel', ['channel'])\n    .index('by_body', ['body'])",
        ),
    );
    await expect(engine.reload()).rejects.toSatisfy(
      (error) =>
        error instanceof LoadError &&
        /document \w+ in table "messages" does not match the schema: `body`: expected float64 \(number\), got string "text"/.test(
          error.message,
        ),
    );
    // The previous code and schema still serve, and the new index was not left behind.
    expect(
      await engine.mutation('messages:send', { channel: 'a', author: 'x', body: 'still text' }),
    ).toMatchObject({ ok: true });
    expect(engine.store.catalog().index('messages', 'by_body')).toBeUndefined();
  });

  it('reports a module that does not build or throws on load, naming the file', async () => {
    const engine = await startApp('basic', driver, { copy: true });
    writeFileSync(join(engine.functionsDir, 'broken.ts'), 'export const x = ;\n');
    await expect(engine.reload()).rejects.toThrow(/broken\.ts:1:\d+: Unexpected ";"/);
    writeFileSync(
      join(engine.functionsDir, 'broken.ts'),
      "throw new Error('boom at import');\nexport {};\n",
    );
    await expect(engine.reload()).rejects.toThrow(
      /Loading module "broken" failed: Error: boom at import/,
    );
    // Still serving the last good code.
    expect(await engine.query('messages:list', {})).toMatchObject({ ok: true });
  });
});
