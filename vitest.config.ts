import { defaultExclude, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault suite runs on its own (npm run test:faults, vitest.faults.config.ts): minutes of SIGKILLs under load.
    exclude: [...defaultExclude, 'test/faults/**'],
    // Tests start real processes and real LMDB environments; two cores are shared with them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
