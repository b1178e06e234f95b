/**
 * The boot test of `osbuilder build`: kernel + artifact booted as
 * kata-runtime would, the boot test's container run in it
 * (container-checks.ts) and, for the GPU kernel, the GPU checks
 * (gpu-checks.ts); cached by the exact files booted.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Arch } from '../core/arch.js';
import type { CacheInputs } from '../core/cache.js';
import { memoSha256 } from '../core/memo.js';
import { step } from '../core/log.js';
import { TOOL_VERSION } from '../core/version.js';
import { boot, parseGuestArch } from '../runtime/index.js';
import { runContainerChecks, type ContainerChecks } from './container-checks.js';
import { runGpuChecks, type GpuChecks } from './gpu-checks.js';
import { buildProbeModule, initrdWithModule, PROBE_MODULE } from './gpu-probe.js';
import { KATA_ARCH_OPTIONS } from './install.js';
import { cachedStage, type StageContext } from './stages.js';

export interface BootTest {
  kernel: string;
  artifact: string;
  passed: boolean;
  /** True when these exact files already passed (cache hit): not booted again. */
  cached: boolean;
  accel: string;
  channel: string;
  agentVersion: string;
  /** PRETTY_NAME of the guest's os-release, as the container saw it. */
  osRelease: string;
  /** The guest's root device (root=): /dev/dm-0 for a dm-verity image; "initrd" for an initrd. */
  root: string;
  container: ContainerChecks;
  /** The GPU kernel's checks: hotplug of a large-BAR device, the probe module loaded. */
  gpu?: GpuChecks;
  /** Every RPC sent, first use first: Kata's standard ones only. */
  rpcs: string[];
  readyMs: number;
  totalMs: number;
}

/** Bumped when the boot test changes: earlier passes do not count. */
export const BOOT_TEST_VERSION = 'container-3';

/** The GPU kernel's material for its checks (gpu-checks.ts): the kernel-devel tarball the probe module builds against. */
export interface GpuBootInput {
  headersTarball: string;
  release: string;
}

/** Writes the boot's configuration.toml, with the GPU boot's initrd and kernel modules when given; its path. */
export type WriteBootConfig = (extra: { initrd?: string; kernelModules?: string[] }) => Promise<string>;

/**
 * Boots kernel + artifact as kata-runtime would and runs the boot test's
 * container in it (container-checks.ts); a GPU kernel's boot also runs the
 * GPU checks (gpu-checks.ts), the probe module riding on an initrd.
 */
export async function bootTest(
  ctx: StageContext,
  kernel: { label: string; path: string; sha256: string; gpu?: GpuBootInput },
  artifact: { label: string; role: 'image' | 'initrd'; path: string; sha256: string; osRelease: string; kernelVerityParams?: string },
  writeConfig: WriteBootConfig,
  opts: { accel?: string; timeoutSec?: number },
): Promise<BootTest> {
  const inputs: CacheInputs = {
    tool: TOOL_VERSION,
    test: BOOT_TEST_VERSION,
    kernel: kernel.sha256,
    artifact: artifact.sha256,
    role: artifact.role,
    verity: artifact.kernelVerityParams ?? null,
    gpu: kernel.gpu ? true : null,
    ...(await firmwareInput(ctx.plan.arch, ctx.cache.root)),
  };
  const built = await cachedStage<BootTest>(ctx, 'boot', inputs, async (dir) => {
    const rpcs: string[] = [];
    const probe = kernel.gpu ? await gpuProbe(ctx, kernel.gpu, artifact) : undefined;
    const configFile = await writeConfig(probe?.config ?? {});
    const r = await step(`boot test ${kernel.label} + ${artifact.label}`, () =>
      boot({
        configFile,
        arch: parseGuestArch(ctx.plan.arch),
        hostname: 'osb-boot-test',
        session: async (s) => ({ container: await runContainerChecks(s, artifact.osRelease), gpu: probe ? await runGpuChecks(s, probe.module) : undefined }),
        observe: (path) => void (rpcs.includes(path) || rpcs.push(path)),
        ...(opts.accel ? { accel: opts.accel } : {}),
        ...(opts.timeoutSec ? { timeoutSec: opts.timeoutSec } : {}),
      }),
    );
    const result: BootTest = {
      kernel: kernel.label,
      artifact: artifact.label,
      passed: true,
      cached: false,
      accel: r.accel,
      channel: r.channel,
      agentVersion: r.agent.version,
      osRelease: r.session!.container.guestOs,
      root: r.kernelParams.find((p) => p.startsWith('root='))?.slice('root='.length) ?? 'initrd',
      container: r.session!.container,
      ...(r.session!.gpu ? { gpu: r.session!.gpu } : {}),
      rpcs,
      readyMs: r.timings.qemuStartToAgentReadyMs,
      totalMs: r.timings.totalMs,
    };
    await writeFile(join(dir, 'boot.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  });
  return { ...built.entry.meta, cached: built.cached };
}

/**
 * The firmware the boot configuration names (aarch64's AAVMF, 64 MiB): an updated one re-runs the
 * test. Hashed through the memo, so a warm build does not read it again. A missing file is the boot's to report.
 */
async function firmwareInput(arch: Arch, cacheRoot: string): Promise<CacheInputs> {
  const firmware = KATA_ARCH_OPTIONS[arch]?.firmware;
  return firmware ? { firmware: await memoSha256(firmware, cacheRoot).catch(() => 'missing') } : {};
}

/** For an initrd: the probe module built against the GPU kernel's headers, and the initrd with it appended. */
async function gpuProbe(
  ctx: StageContext,
  gpu: GpuBootInput,
  artifact: { role: 'image' | 'initrd'; path: string },
): Promise<{ config: { initrd?: string; kernelModules?: string[] }; module: { token: string } | { skipped: string } }> {
  if (artifact.role !== 'initrd') return { config: {}, module: { skipped: 'the probe module rides on an initrd; this boot is of an image' } };
  // In the build's scratch space (removed when the build ends, however it ends).
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(join(ctx.workDir, 'gpu-probe-'));
  const ko = await step(`build ${PROBE_MODULE}.ko against linux-headers-${gpu.release}`, () =>
    buildProbeModule(gpu.headersTarball, gpu.release, ctx.plan.arch, work),
  );
  const initrd = join(work, 'initrd-with-probe.img');
  await initrdWithModule(artifact.path, ko, gpu.release, work, initrd);
  const token = randomBytes(6).toString('hex');
  return { config: { initrd, kernelModules: [`${PROBE_MODULE} token=${token}`] }, module: { token } };
}
