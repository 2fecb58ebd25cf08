import { compareValues, type Value } from 'convex/values';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Document, IndexEntry, Store } from '../interfaces.js';
import { encodeKey, keySuccessor, prefixEnd } from '../keys.js';
import { insertAll, seed, withStore, type HarnessFactory } from './harness.js';
import { convexValue, ORDERED_SAMPLES, sameValue } from './values.js';

function rowFor(value: Value | undefined): Record<string, Value> {
  return value === undefined ? {} : { v: value };
}

async function scanAll(
  store: Store,
  table: string,
  index: string,
  order: 'asc' | 'desc',
  range: { start?: Uint8Array; end?: Uint8Array } = {},
): Promise<IndexEntry[]> {
  return store.read((tx) => tx.scan({ table, index, order, limit: 100_000, ...range }));
}

/** Documents sorted the way an index on `fields` must order them. */
function sortedBy(documents: readonly Document[], fields: readonly string[]): Document[] {
  return [...documents].sort((a, b) => {
    for (const field of [...fields, '_creationTime', '_id']) {
      const c = compareValues(a[field], b[field]);
      if (c !== 0) return c;
    }
    return 0;
  });
}

export function scanCases(harness: HarnessFactory): void {
  describe('scans', () => {
    it('the samples are in Convex order (checks the fixture itself)', () => {
      for (let i = 1; i < ORDERED_SAMPLES.length; i++) {
        expect(
          Math.sign(compareValues(ORDERED_SAMPLES[i - 1], ORDERED_SAMPLES[i])),
          `sample ${i}`,
        ).toBe(-1);
      }
    });

    it('orders mixed types exactly as Convex compares them, in both directions', async () => {
      await withStore(harness(), async (store) => {
        // Insert in a scrambled order so creation time cannot explain the result.
        const scrambled = ORDERED_SAMPLES.map((v, i) => ({ v, i })).sort(
          (a, b) => ((a.i * 37) % 61) - ((b.i * 37) % 61),
        );
        await seed(
          store,
          't',
          scrambled.map(({ v }) => rowFor(v)),
          { by_v: ['v'] },
        );
        const asc = await scanAll(store, 't', 'by_v', 'asc');
        expect(asc).toHaveLength(ORDERED_SAMPLES.length);
        asc.forEach((entry, i) => {
          expect(sameValue(entry.document.v, ORDERED_SAMPLES[i]), `position ${i}`).toBe(true);
        });
        const desc = await scanAll(store, 't', 'by_v', 'desc');
        expect(desc.map((e) => e.document._id)).toEqual(asc.map((e) => e.document._id).reverse());
      });
    });

    it('selects exact ranges on a compound index: prefixes, inclusive and exclusive bounds', async () => {
      await withStore(harness(), async (store) => {
        const rows: Record<string, Value>[] = [];
        for (const a of [1, 2, 3]) {
          for (const b of ['x', 'y', 'z']) rows.push({ a, b }, { a, b });
          rows.push({ a });
        }
        rows.push({ a: 2n, b: 'y' }, { b: 'y' });
        const docs = await seed(store, 't', rows, { by_ab: ['a', 'b'] });
        const sorted = sortedBy(docs, ['a', 'b']);
        const within = (pred: (d: Document) => boolean) => sorted.filter(pred).map((d) => d._id);
        const is2 = (d: Document) => sameValue(d.a, 2);
        const cmpB = (d: Document, s: string) => compareValues(d.b, s);

        const p2 = encodeKey([2]);
        const cases: Array<
          [string, { start?: Uint8Array; end?: Uint8Array }, (d: Document) => boolean]
        > = [
          ['a == 2', { start: p2, end: prefixEnd(p2) }, is2],
          [
            'a == 2, b > y',
            { start: prefixEnd(encodeKey([2, 'y'])), end: prefixEnd(p2) },
            (d) => is2(d) && cmpB(d, 'y') > 0,
          ],
          [
            'a == 2, b >= y',
            { start: encodeKey([2, 'y']), end: prefixEnd(p2) },
            (d) => is2(d) && cmpB(d, 'y') >= 0,
          ],
          [
            'a == 2, b < y',
            { start: p2, end: encodeKey([2, 'y']) },
            (d) => is2(d) && cmpB(d, 'y') < 0,
          ],
          [
            'a == 2, b <= y',
            { start: p2, end: prefixEnd(encodeKey([2, 'y'])) },
            (d) => is2(d) && cmpB(d, 'y') <= 0,
          ],
          [
            'a == 2, x < b < z',
            { start: prefixEnd(encodeKey([2, 'x'])), end: encodeKey([2, 'z']) },
            (d) => is2(d) && cmpB(d, 'x') > 0 && cmpB(d, 'z') < 0,
          ],
          [
            'a == 2, b == y',
            { start: encodeKey([2, 'y']), end: prefixEnd(encodeKey([2, 'y'])) },
            (d) => is2(d) && cmpB(d, 'y') === 0,
          ],
          ['a > 1', { start: prefixEnd(encodeKey([1])) }, (d) => compareValues(d.a, 1) > 0],
          ['a <= 1', { end: prefixEnd(encodeKey([1])) }, (d) => compareValues(d.a, 1) <= 0],
          [
            'a > 3 (empty)',
            { start: prefixEnd(encodeKey([3])), end: encodeKey([3.5]) },
            () => false,
          ],
          [
            'a == 2, b > z (empty)',
            { start: prefixEnd(encodeKey([2, 'z'])), end: prefixEnd(p2) },
            (d) => is2(d) && cmpB(d, 'z') > 0,
          ],
          ['start after end (empty)', { start: encodeKey([3]), end: encodeKey([1]) }, () => false],
          ['start == end (empty)', { start: p2, end: p2 }, () => false],
        ];
        for (const [label, range, pred] of cases) {
          const expected = within(pred);
          const asc = await scanAll(store, 't', 'by_ab', 'asc', range);
          expect(
            asc.map((e) => e.document._id),
            `${label} asc`,
          ).toEqual(expected);
          const desc = await scanAll(store, 't', 'by_ab', 'desc', range);
          expect(
            desc.map((e) => e.document._id),
            `${label} desc`,
          ).toEqual([...expected].reverse());
        }
      });
    });

    it('stops at the limit and resumes after the last key, in both directions', async () => {
      await withStore(harness(), async (store) => {
        const docs = await seed(
          store,
          't',
          Array.from({ length: 53 }, (_, i) => ({ n: i % 5 })),
          { by_n: ['n'] },
        );
        const expected = sortedBy(docs, ['n']).map((d) => d._id);
        for (const index of ['by_n', 'by_creation_time', 'by_id']) {
          const full = (await scanAll(store, 't', index, 'asc')).map((e) => e.document._id);
          expect(full).toHaveLength(docs.length);
          if (index === 'by_n') expect(full).toEqual(expected);

          const ascending: string[] = [];
          let start: Uint8Array | undefined;
          for (;;) {
            const page = await store.read((tx) =>
              tx.scan({ table: 't', index, order: 'asc', limit: 7, start }),
            );
            ascending.push(...page.map((e) => e.document._id));
            if (page.length < 7) break;
            start = keySuccessor(page[page.length - 1]!.key);
          }
          expect(ascending, `${index} asc pages`).toEqual(full);

          const descending: string[] = [];
          let end: Uint8Array | undefined;
          for (;;) {
            const page = await store.read((tx) =>
              tx.scan({ table: 't', index, order: 'desc', limit: 7, end }),
            );
            descending.push(...page.map((e) => e.document._id));
            if (page.length < 7) break;
            end = page[page.length - 1]!.key;
          }
          expect(descending, `${index} desc pages`).toEqual([...full].reverse());
        }
        const none = await store.read((tx) =>
          tx.scan({ table: 't', index: 'by_n', order: 'asc', limit: 0 }),
        );
        expect(none).toEqual([]);
      });
    });

    it('returns each entry with its key, which matches a point range on that key', async () => {
      await withStore(harness(), async (store) => {
        await seed(store, 't', [{ v: 'b' }, { v: 'a' }], { by_v: ['v'] });
        const entries = await scanAll(store, 't', 'by_v', 'asc');
        for (const entry of entries) {
          const exact = await store.read((tx) =>
            tx.scan({
              table: 't',
              index: 'by_v',
              order: 'asc',
              limit: 10,
              start: entry.key,
              end: keySuccessor(entry.key),
            }),
          );
          expect(exact.map((e) => e.document._id)).toEqual([entry.document._id]);
        }
      });
    });

    it('property: random values come back from an index in Convex order', async () => {
      await withStore(harness(), async (store) => {
        await store.write(async (tx) => {
          await tx.createTable('p');
          await tx.createIndex('p', 'by_v', ['v']);
        });
        const number = store.catalog().requireTable('p').number;
        await fc.assert(
          fc.asyncProperty(
            fc.array(convexValue, { minLength: 1, maxLength: 25 }),
            async (values) => {
              await store.write(async (tx) => {
                const old = await tx.scan({
                  table: 'p',
                  index: 'by_id',
                  order: 'asc',
                  limit: 1000,
                });
                for (const entry of old) await tx.delete('p', entry.document._id);
                await insertAll(
                  tx,
                  'p',
                  number,
                  values.map((v) => ({ v })),
                );
              });
              const entries = await scanAll(store, 'p', 'by_v', 'asc');
              const got = entries.map((e) => e.document.v);
              const expected = [...values].sort(compareValues);
              expect(got).toHaveLength(expected.length);
              got.forEach((v, i) => expect(sameValue(v, expected[i])).toBe(true));
            },
          ),
          { numRuns: 40 },
        );
      });
    });
  });
}
