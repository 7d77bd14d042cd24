import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real processes and real LMDB environments; two cores are shared with them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
