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
          // Stages whose integration suites are finished and green. The kernel,
          // agent/runtime boot and rootfs boot suites join as their issues close.
          include: (process.env.OSBUILDER_INTEGRATION_ALL
            ? ['test/integration/**/*.test.ts']
            : [
                'test/integration/image-build.test.ts',
                'test/integration/image-errors.test.ts',
                'test/integration/image-dax-kernel.test.ts',
                'test/integration/initrd.test.ts',
                'test/integration/rootfs-build.test.ts',
                'test/integration/rootfs-errors.test.ts',
                'test/integration/rootfs-dockerfiles.test.ts',
              ]),
          // Real Docker/QEMU/kernel builds on 2 cores: one file at a time.
          fileParallelism: false,
          testTimeout: 20 * 60_000,
          hookTimeout: 30 * 60_000,
        },
      },
    ],
  },
});
