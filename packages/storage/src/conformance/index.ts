/**
 * The storage conformance suite: every driver runs these same cases and must give identical
 * results. A driver's test file calls `storeConformance` with a harness that opens fresh stores.
 */
import { describe } from 'vitest';
import { catalogCases } from './catalog.cases.js';
import { documentCases } from './documents.cases.js';
import type { HarnessFactory } from './harness.js';
import { limitCases } from './limits.cases.js';
import { scanCases } from './scans.cases.js';
import { subtransactionCases, transactionCases } from './transactions.cases.js';

export type { HarnessFactory, StoreHarness } from './harness.js';
export { makeDocument, seed, withStore, writeWithRetries } from './harness.js';
export { convexValue, ORDERED_SAMPLES, sameValue } from './values.js';

export function storeConformance(driver: string, harness: HarnessFactory): void {
  describe(`storage conformance: ${driver}`, () => {
    catalogCases(harness);
    documentCases(harness);
    scanCases(harness);
    transactionCases(harness);
    subtransactionCases(harness);
    limitCases(harness);
  });
}
