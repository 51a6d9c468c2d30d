import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files run in parallel worker processes; each isolates its Redis keys under its own prefix.
    pool: 'forks',
  },
});
