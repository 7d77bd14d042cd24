import { defineConfig } from 'vitest/config';

/**
 * The fault suite (issue 8): whole-gateway scenarios (SIGKILL under load, ...) that take minutes,
 * so `npm test` leaves them out and `npm run test:faults` runs them alone.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    // Each scenario sets its own, longer timeout; hooks start and stop real processes.
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One scenario at a time: they load both cores on their own, and their figures mean little when they overlap.
    fileParallelism: false,
  },
});
