import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Workspace packages are imported from their TypeScript sources in tests (see package.json
    // "exports"), so tests never run against a stale build.
    conditions: ['sleigh-source'],
  },
  ssr: {
    resolve: {
      conditions: ['sleigh-source'],
    },
  },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/dashboard/e2e/**/*.test.ts',
      'examples/*/src/**/*.test.ts',
      'bench/src/**/*.test.ts',
    ],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
