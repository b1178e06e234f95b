/**
 * The jobs of `osbuilder build`'s dependency graph: the rootfs (image /
 * initrd) and kernel stages, and a boot test of every kernel × artifact pair
 * (with the installed kernel when none is built).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TOOL_VERSION } from '../core/version.js';
import type { Job } from './dag.js';
import { renderQemuConfig, type QemuConfigInput } from './install.js';
import { imageBoot } from './install-plan.js';
import type { BuildOptions, RootfsJob } from './plan.js';
import { bootTest, type BootTest, type GpuBootInput, type WriteBootConfig } from './boot-test.js';
import { kernelArtifact, rootfsArtifact, type KernelArtifact, type RootfsArtifact, type StageContext } from './stages.js';

export type StageOutput = RootfsArtifact | KernelArtifact | BootTest;

/** A boot test may run under TCG (no usable KVM): far slower than Kata's 45 s dial_timeout assumes. */
export const DEFAULT_BOOT_TIMEOUT_SEC = 300;

export type BootKernel = { label: string; path: string; sha256: string; gpu?: GpuBootInput };

/** What the boot tests need besides the stage context. */
export interface BootRun {
  opts: Pick<BuildOptions, 'accel' | 'bootTimeout'>;
  workDir: string;
  qemu: { path: string; machineType: string };
  /** The installed kernel, when this run builds none. */
  fallbackKernel: BootKernel | undefined;
}

/** The rootfs and kernel stages, independent of each other. */
export function artifactJobs(ctx: StageContext): Job<StageOutput>[] {
  return [
    ...ctx.plan.rootfs.map((r) => ({ id: `rootfs:${r.role}`, deps: [], run: () => rootfsArtifact(ctx, r) })),
    ...ctx.plan.kernels.map((k) => ({ id: `kernel:${k.variant}`, deps: [], run: () => kernelArtifact(ctx, k) })),
  ];
}

/** Boot tests: every kernel built here with every artifact; without a kernel, the installed one. */
export function bootTestJobs(ctx: StageContext, run: BootRun): Job<StageOutput>[] {
  const kernelIds = ctx.plan.kernels.map((k) => `kernel:${k.variant}`);
  const jobs: Job<StageOutput>[] = [];
  for (const r of ctx.plan.rootfs) {
    for (const kid of run.fallbackKernel ? [undefined] : kernelIds) {
      const config = join(run.workDir, `boot-${jobs.length + 1}.toml`);
      jobs.push({
        id: `boot:${kid ?? 'installed'}:${r.role}`,
        deps: [`rootfs:${r.role}`, ...(kid ? [kid] : [])],
        run: async (deps) => {
          const k = kid ? (deps[kid] as KernelArtifact) : undefined;
          const kernel = k ? { label: k.names.vmlinuz, path: k.vmlinuz, sha256: k.vmlinuzSha256, ...gpuInput(k) } : run.fallbackKernel!;
          return bootOne(ctx, run, r, deps[`rootfs:${r.role}`] as RootfsArtifact, kernel, config);
        },
      });
    }
  }
  return jobs;
}

/** The GPU kernel's kernel-devel tarball, for the GPU checks of its boot tests. */
function gpuInput(k: KernelArtifact): { gpu?: GpuBootInput } {
  return k.variant === 'nvidia' && k.headersTarball ? { gpu: { headersTarball: k.headersTarball, release: k.release } } : {};
}

/** Boot-tests kernel + artifact with a configuration written for them (the image as this plan builds it; the GPU one for a GPU kernel). */
async function bootOne(ctx: StageContext, run: BootRun, r: RootfsJob, a: RootfsArtifact, kernel: BootKernel, config: string): Promise<BootTest> {
  const plan = ctx.plan;
  const verity = a.kernelVerityParams ? { kernelVerityParams: a.kernelVerityParams } : {};
  const writeConfig: WriteBootConfig = async (extra) => {
    const input: QemuConfigInput = {
      arch: plan.arch,
      qemuPath: run.qemu.path,
      machineType: run.qemu.machineType,
      kernel: kernel.path,
      [r.role]: extra.initrd ?? a.path,
      ...verity,
      ...imageBoot(plan),
      ...(kernel.gpu ? { gpu: true } : {}),
      ...(extra.kernelModules ? { kernelModules: extra.kernelModules } : {}),
      toolVersion: TOOL_VERSION,
    };
    await writeFile(config, renderQemuConfig(input));
    return config;
  };
  return bootTest(ctx, kernel, { label: a.fileName, role: r.role, path: a.path, sha256: a.sha256, osRelease: a.osRelease, ...verity }, writeConfig, {
    ...(run.opts.accel ? { accel: run.opts.accel } : {}),
    timeoutSec: run.opts.bootTimeout ?? DEFAULT_BOOT_TIMEOUT_SEC,
  });
}
