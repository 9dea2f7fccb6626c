import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Run on their own: the cluster tests (`npm run test:cluster`, vitest.cluster.config.ts) and the
    // container test (`npm run test:container`, which needs an engine and a built image).
    exclude: [...configDefaults.exclude, 'test/cluster/**', 'test/container/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration files start their own servers; keep parallelism modest on a 2-core machine.
    maxWorkers: 2,
    pool: 'forks',
  },
});
