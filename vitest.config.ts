import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The fault suite has its own config and script (`npm run test:faults`).
    exclude: ['**/node_modules/**', 'tests/faults/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files run in parallel worker processes; each isolates its Redis keys under its own prefix.
    pool: 'forks',
  },
});
