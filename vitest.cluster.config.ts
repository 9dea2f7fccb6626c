import { defineConfig } from 'vitest/config';

/** The cluster tests (`npm run test:cluster`): HAProxy and three gateway processes, one file at a time. */
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
