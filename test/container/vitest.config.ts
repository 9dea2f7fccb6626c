import { defineConfig } from 'vitest/config';

/** The container test only (npm run test:container, through test/container/run.sh). */
export default defineConfig({
  test: {
    include: ['test/container/**/*.test.ts'],
    testTimeout: 5 * 60_000,
    hookTimeout: 30 * 60_000,
    maxWorkers: 1,
    pool: 'forks',
  },
});
