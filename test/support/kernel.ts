/**
 * The guest kernels (x86_64 default and nvidia, aarch64 default), each built once through the kernel stage of
 * `osbuilder build` (setup -> verify -> build, cached by source sha256 +
 * fragments hash + kata_config_version) from Debian's linux-source-6.1
 * tarball, in a build cache under the test cache. `osbuilder build` tests
 * seed their fresh caches with this entry (seedKernelEntry), so the suite
 * compiles the kernel once. The source tree stays beside the cache entry for
 * incremental checks (CLI build/install, bench).
 */
import { cp, mkdir } from 'node:fs/promises';
import type { GuestArch } from '../../runtime/index.js';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { BuildCache } from '../../core/cache.js';
import { sha256File } from '../../core/hash.js';
import { kernelArtifact, type KernelArtifact } from '../../pipeline/stages.js';
import { planBuild } from '../../pipeline/plan.js';
import { testCache } from './fixtures.js';

export const LINUX_SOURCE_TARBALL = process.env.OSBUILDER_TEST_KERNEL_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';
export const LINUX_SOURCE_VERSION = process.env.OSBUILDER_TEST_KERNEL_VERSION ?? '6.1';
/** The build cache the kernel lives in (OSBUILDER_CACHE_DIR layout). */
export const KERNEL_CACHE = join(testCache, 'build-cache');
/**
 * SOURCE_DATE_EPOCH the suite's kernel is built with (it is part of the
 * kernel stage's key): `osbuilder build` tests and rebuilds of the tree use it too.
 */
export const KERNEL_SDE = '1700000000';

export interface GuestKernel {
  /** The image QEMU's -kernel boots: bzImage on x86_64, Image (uncompressed) on aarch64. */
  bzImage: string;
  /** Uncompressed ELF kernel. */
  vmlinux: string;
  /** Kernel version from the tree's Makefile (e.g. 6.1.192). */
  version: string;
  /** The verified .config it was built with. */
  config: string;
  /** `uname -r` of the guest (e.g. 6.1.192-kata). */
  release: string;
  /** The built source tree (do not modify: other tests reuse it). */
  tree: string;
  /** kata_config_version used. */
  configVersion: string;
  /** The kernel-devel headers tarball (GPU variant only). */
  headersTarball: string | undefined;
  /** The cache entry (stage kernel-default or kernel-nvidia). */
  entry: KernelArtifact;
}

let tarballSha: Promise<string> | undefined;

/** sha256 of the source tarball (computed once per process). */
export function sourceSha256(): Promise<string> {
  tarballSha ??= sha256File(LINUX_SOURCE_TARBALL);
  return tarballSha;
}

const memo = new Map<string, Promise<GuestKernel>>();

/**
 * The default kernel, or with 'nvidia' the GPU variant (modules, kernel-devel:
 * headersTarball); for aarch64 cross-built with Debian's aarch64-linux-gnu-gcc.
 */
export function guestKernel(variant: 'default' | 'nvidia' = 'default', arch: GuestArch = 'x86_64'): Promise<GuestKernel> {
  const id = `${arch}/${variant}`;
  let built = memo.get(id);
  if (built) return built;
  built = (async () => {
    const plan = planBuild(
      { kernel: true, kernelSource: LINUX_SOURCE_TARBALL, kernelVersion: LINUX_SOURCE_VERSION, arch },
      undefined,
      arch,
      availableParallelism(),
    );
    // The same source choice `osbuilder build` makes when Debian's linux-source is installed: same cache key.
    plan.kernelSource = { kind: 'debian-package', source: LINUX_SOURCE_TARBALL, version: LINUX_SOURCE_VERSION };
    const cache = new BuildCache(KERNEL_CACHE);
    // The kernel stage reads the epoch from the environment, as `osbuilder build` would.
    const before = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = KERNEL_SDE;
    let entry: KernelArtifact;
    try {
      entry = await kernelArtifact(
        { plan, cache, workDir: KERNEL_CACHE, agent: { path: '', sha256: '', source: 'none' }, extraPackages: [], sourceDateEpoch: Number(KERNEL_SDE) },
        { variant },
      );
    } finally {
      if (before === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = before;
    }
    const file = (name: string) => entry.files.find((f) => f.name === name)!.path;
    return {
      bzImage: arch === 'aarch64' ? file(entry.names.vmlinux) : entry.vmlinuz,
      vmlinux: file(entry.names.vmlinux),
      config: file(entry.names.config),
      version: entry.version,
      release: entry.release,
      tree: join(KERNEL_CACHE, 'kernel-trees', `linux-${LINUX_SOURCE_VERSION}-${arch}${variant === 'default' ? '' : `-${variant}`}`),
      configVersion: entry.configVersion,
      headersTarball: entry.headersTarball,
      entry,
    };
  })();
  memo.set(id, built);
  built.catch(() => memo.delete(id));
  return built;
}

/** The GPU variant: built with modules, its kernel-devel headers tarball beside it. */
export const gpuKernel = () => guestKernel('nvidia');
/** The default aarch64 kernel (arch/arm64/boot/Image), cross-built. */
export const aarch64Kernel = () => guestKernel('default', 'aarch64');

/** Copies a guest kernel's cache entry (default, GPU or aarch64) into another build cache, so `osbuilder build` finds it there. */
export async function seedKernelEntry(cacheDir: string, variant: 'default' | 'nvidia' = 'default', arch: GuestArch = 'x86_64'): Promise<void> {
  const k = await guestKernel(variant, arch);
  const stage = join(cacheDir, `kernel-${variant}`);
  await mkdir(stage, { recursive: true });
  await cp(join(KERNEL_CACHE, `kernel-${variant}`, k.entry.key), join(stage, k.entry.key), { recursive: true });
}

export interface QemuRun {
  /** Everything the guest printed on the serial console. */
  output: string;
  /** The line that matched `until`, if any. */
  matched?: string;
  exitCode?: number;
}

/**
 * Boots QEMU (TCG: nested KVM hangs here) with the serial console on stdout,
 * until a line matches `until`, QEMU exits, or `timeoutMs` passes. QEMU is
 * always killed before this returns.
 */
export async function runQemu(args: string[], until: RegExp, timeoutMs = 5 * 60_000): Promise<QemuRun> {
  const { execa } = await import('execa');
  const child = execa(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none', ...args],
    {
      reject: false,
      stdin: 'ignore',
      buffer: false,
      stdout: 'pipe',
      stderr: 'pipe',
    },
  );
  let output = '';
  let matched: string | undefined;
  let stderr = '';
  try {
    await new Promise<void>((resolvePromise) => {
      const timer = setTimeout(resolvePromise, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolvePromise();
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (!matched) {
          const line = output.split('\n').find((l) => until.test(l));
          if (line !== undefined) {
            matched = line.replace(/\r$/, '');
            done();
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('exit', done);
    });
  } finally {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  }
  if (stderr.trim()) output += `\n[qemu stderr]\n${stderr}`;
  return { output, matched, exitCode: child.exitCode ?? undefined };
}
