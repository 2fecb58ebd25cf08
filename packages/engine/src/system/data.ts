/**
 * `_system/data`: the dashboard's Data page. Tables with their counts, indexes and schema; a
 * table's documents a page at a time in the order of any of its indexes, filtered by field
 * values; and writes. Writes go through `ctx.db` like any mutation's, so the schema validates
 * them and the error names the table and the field.
 */
import {
  internalMutationGeneric,
  internalQueryGeneric,
  paginationOptsValidator,
} from 'convex/server';
import { v, type Value } from 'convex/values';
import { appDb, filteredPage, system, type FilterBuilder, type LooseReader } from './syscall.js';

type TableInfo = {
  name: string;
  indexes: Array<{ name: string; fields: string[] }>;
  documentType: unknown;
};

/** The app's tables with document counts, indexes and validators (live). */
const tables = internalQueryGeneric({
  args: {},
  handler: async (ctx) => {
    const infos = (await system('tables')) as TableInfo[];
    const db = appDb(ctx);
    const out = [];
    for (const info of infos) out.push({ ...info, documents: await db.query(info.name).count() });
    return out;
  },
});

/** A table's documents in index order, a page at a time, keeping those matching `filters`. */
const documents = internalQueryGeneric({
  args: {
    table: v.string(),
    index: v.optional(v.string()),
    order: v.optional(v.union(v.literal('asc'), v.literal('desc'))),
    filters: v.optional(v.array(v.object({ field: v.string(), value: v.any() }))),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { table, index, order, filters, paginationOpts }) => {
    let query = appDb(ctx)
      .query(table)
      .withIndex(index ?? 'by_creation_time')
      .order(order ?? 'desc');
    if (filters === undefined || filters.length === 0) return await query.paginate(paginationOpts);
    query = query.filter((q: FilterBuilder) =>
      q.and(...filters.map(({ field, value }) => q.eq(q.field(field), value as Value))),
    );
    return await query.paginate(filteredPage(paginationOpts));
  },
});

function idOf(db: LooseReader, table: string, id: string): string {
  const normalized = db.normalizeId(table, id);
  if (normalized === null) throw new Error(`"${id}" is not the id of a document in "${table}"`);
  return normalized;
}

/** Strips the fields the database sets, so an edited copy of a document can be written back. */
function userFields(document: unknown): Record<string, Value> {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new Error('A document is an object of fields, like {"name": "value"}');
  }
  const {
    _id: _ignoredId,
    _creationTime: _ignoredTime,
    ...fields
  } = document as Record<string, Value>;
  return fields;
}

const document = internalQueryGeneric({
  args: { table: v.string(), id: v.string() },
  handler: async (ctx, { table, id }) => {
    const db = appDb(ctx);
    const normalized = db.normalizeId(table, id);
    return normalized === null ? null : await db.get(normalized);
  },
});

const insert = internalMutationGeneric({
  args: { table: v.string(), document: v.any() },
  handler: async (ctx, { table, document }) => await appDb(ctx).insert(table, userFields(document)),
});

const replace = internalMutationGeneric({
  args: { table: v.string(), id: v.string(), document: v.any() },
  handler: async (ctx, { table, id, document }) => {
    const db = appDb(ctx);
    await db.replace(idOf(db, table, id), userFields(document));
    return null;
  },
});

const remove = internalMutationGeneric({
  args: { table: v.string(), ids: v.array(v.string()) },
  handler: async (ctx, { table, ids }) => {
    const db = appDb(ctx);
    let deleted = 0;
    for (const id of ids) {
      const normalized = idOf(db, table, id);
      if ((await db.get(normalized)) === null) continue;
      await db.delete(normalized);
      deleted++;
    }
    return deleted;
  },
});

export const DATA = { tables, documents, document, insert, replace, remove };
