import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Functions folders written against the official convex package, shared by the test suites. */
export const TEST_APPS = join(dirname(fileURLToPath(import.meta.url)), '..', 'apps');
