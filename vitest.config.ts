import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // A QEMU and a container that are not ours run beside every test (test/support/neighbours.ts);
          // the fixtures several files read are built once before any file (test/support/shared-fixtures.ts).
          // Neighbours first: vitest tears down every global setup file, set up or not.
          globalSetup: ['test/support/neighbours.ts', 'test/support/shared-fixtures.ts'],
          // Real Docker/QEMU/kernel builds on 2 cores: one file at a time.
          fileParallelism: false,
          testTimeout: 20 * 60_000,
          hookTimeout: 30 * 60_000,
        },
      },
    ],
  },
});
