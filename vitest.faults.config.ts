import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): real worker processes killed, Redis restarted, SMTP down, a
 * push service pushing back. Slow on purpose, so `npm test` leaves it out and CI runs it on its own.
 */
export default defineConfig({
  test: {
    include: ['tests/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file loads the machine with several child processes; two at once on 2 cores would measure contention.
    fileParallelism: false,
  },
});
