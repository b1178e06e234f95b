/**
 * vitest globalSetup of the integration project: builds the fixtures that more
 * than one file reads, once, before any file runs, so a cold machine builds
 * them here rather than in whichever file asks first. They stay in the on-disk
 * test cache (a warm machine rebuilds nothing); the files call the same
 * functions, which then only read that cache. Each fixture's time is provided
 * as `sharedFixtures` for test/support/file-times.ts.
 */
import type { TestProject } from 'vitest/node';
import { debianCloudKernel, debianMinbaseRootfs } from './fixtures.js';
import { debianKataRootfs } from './image.js';
import { aarch64Kernel, gpuKernel, guestKernel } from './kernel.js';
import { standInAgent } from './rootfs.js';

export interface FixtureTime {
  name: string;
  seconds: number;
  state: 'passed' | 'failed';
}

declare module 'vitest' {
  export interface ProvidedContext {
    sharedFixtures: FixtureTime[];
  }
}

/** One at a time: guestKernel() sets SOURCE_DATE_EPOCH while it builds, which mmdebstrap would pick up. */
const SHARED: [name: string, build: () => Promise<unknown>][] = [
  // boot-e2e, build, build-options, hotplug, kernel-boot, kernel-build, verity-boot; seedKernelEntry() for the builds
  ['guestKernel()', guestKernel],
  // hotplug, kernel-modules (the GPU variant: modules, kernel-devel)
  ['gpuKernel()', gpuKernel],
  // rootfs-aarch64 (cross-built with aarch64-linux-gnu-gcc, booted under qemu-system-aarch64)
  ['aarch64Kernel()', aarch64Kernel],
  // under debianKataRootfs() (image-build, image-errors) and debianMinbaseWithInit() (initrd)
  ['debianMinbaseRootfs()', debianMinbaseRootfs],
  ['debianKataRootfs()', debianKataRootfs],
  // initrd, rootfs-build, rootfs-remote-engine
  ['debianCloudKernel()', debianCloudKernel],
  // rootfs-build, rootfs-errors, rootfs-package-cache, rootfs-remote-engine
  ['standInAgent()', standInAgent],
];

export async function setup(project: TestProject): Promise<void> {
  const times: FixtureTime[] = [];
  try {
    for (const [name, build] of SHARED) {
      const start = performance.now();
      const seconds = () => Math.round((performance.now() - start) / 1000);
      try {
        await build();
      } catch (err) {
        times.push({ name, seconds: seconds(), state: 'failed' });
        throw err;
      }
      times.push({ name, seconds: seconds(), state: 'passed' });
    }
  } finally {
    project.provide('sharedFixtures', times);
  }
}
