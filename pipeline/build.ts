/**
 * `osbuilder build`: rootfs → image / initrd, kernel (+ GPU variant), boot
 * test of every kernel × artifact pair, then one staged, switched install.
 * Stages run as a dependency graph (--jobs at once), each behind the cache.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BuildCache } from '../core/cache.js';
import { ContainerEngine } from '../core/docker.js';
import { onInterrupt } from '../core/cleanup.js';
import { info, step } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { ARCH_FACTS, hostArch } from '../core/arch.js';
import { which } from '../core/exec.js';
import { ownerTag } from '../core/owner.js';
import { runDag } from './dag.js';
import { artifactJobs, bootTestJobs, type BootKernel, type BootRun } from './build-jobs.js';
import { installedTarget, writeInstall } from './install.js';
import { planInstall } from './install-plan.js';
import { checkBootTestable, planBuild, pickDebianSource, type BuildOptions, type BuildPlan } from './plan.js';
import { checkPrefix } from './prefix.js';
import type { BootTest } from './boot-test.js';
import { installedFileSha256, resolveAgent, stageContext, type KernelArtifact, type RootfsArtifact, type StageContext } from './stages.js';
import type { SwitchOutcome } from './switch.js';

export interface SummaryRow {
  artifact: string;
  size: number;
  sha256: string;
  buildMs: number;
  cached: boolean;
  boot: string;
}

export interface BuildResult {
  prefix: string;
  shareDir: string;
  manifest: string;
  install: SwitchOutcome;
  rows: SummaryRow[];
  bootTests: BootTest[];
  notes: string[];
  totalMs: number;
}

export async function resolveBuildPlan(opts: BuildOptions): Promise<BuildPlan> {
  const local = pickDebianSource(await readdir('/usr/src').catch(() => []));
  return planBuild(opts, local, hostArch(), availableParallelism());
}

/** The installed kernel that boot-tests this run's image/initrd when it builds no kernel. */
async function installedBootKernel(plan: BuildPlan): Promise<BootKernel | undefined> {
  if (!plan.bootTest || plan.kernels.length > 0 || plan.rootfs.length === 0) return undefined;
  const path = await installedTarget(plan.prefix, 'vmlinuz.container');
  const sha256 = path ? await installedFileSha256(path) : undefined;
  return path && sha256 ? { label: `installed ${path}`, path, sha256 } : undefined;
}

/** The guest's QEMU and machine type, as the boot tests and the installed configuration name them. */
async function guestQemu(arch: BuildPlan['arch']): Promise<BootRun['qemu']> {
  const guest = ARCH_FACTS[arch === 'aarch64' ? 'aarch64' : 'x86_64'];
  return { path: (await which(guest.qemuSystem)) ?? `/usr/bin/${guest.qemuSystem}`, machineType: guest.qemuMachine };
}

/**
 * Stops what killed runs left (their builder containers may still write into
 * their work dirs: stopped before the dirs go) while the agent (a cache entry
 * of its own, under its own lock) is resolved.
 */
async function cleanUpAndResolveAgent(plan: BuildPlan, opts: BuildOptions, cache: BuildCache): Promise<StageContext['agent']> {
  const cleanUp = async () => {
    if (plan.rootfs.length) await new ContainerEngine(plan.engine).removeOrphans();
    const reaped = await cache.reapDead();
    if (reaped.length) info(`removed what killed runs left in the cache: ${reaped.join(', ')}`);
  };
  const [, agent] = await Promise.all([
    cleanUp(),
    plan.rootfs.length === 0 ? { path: '', sha256: '', source: 'none' } : step(`agent for ${plan.arch}`, () => resolveAgent(opts.agent, plan.arch)),
  ]);
  return agent;
}

/** The summary's rows: each image/initrd and kernel, with its boot tests. */
function summaryRows(rootfs: RootfsArtifact[], kernels: KernelArtifact[], bootTests: BootTest[]): SummaryRow[] {
  const bootFor = (name: string) =>
    bootTests
      .filter((b) => b.artifact === name || b.kernel === name)
      .map((b) => (b.cached ? 'passed before' : `${b.readyMs} ms`))
      .join(', ') || '-';
  return [
    ...rootfs.map((r) => ({ artifact: r.fileName, size: r.size, sha256: r.sha256, buildMs: r.buildMs, cached: r.cached, boot: bootFor(r.fileName) })),
    ...kernels.map((k) => {
      const f = k.files.find((x) => x.name === k.names.vmlinuz)!;
      return { artifact: k.names.vmlinuz, size: f.size, sha256: f.sha256, buildMs: k.buildMs, cached: k.cached, boot: bootFor(k.names.vmlinuz) };
    }),
  ];
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  if (opts.dockerHost) process.env.DOCKER_HOST = opts.dockerHost;
  const plan = await resolveBuildPlan(opts);
  await checkPrefix(plan.prefix, [plan.shareDir, plan.defaultsDir]);
  const fallbackKernel = await installedBootKernel(plan);
  checkBootTestable(plan, fallbackKernel !== undefined);
  const sde = sourceDateEpoch();
  const cache = new BuildCache();
  const agent = await cleanUpAndResolveAgent(plan, opts, cache);
  await mkdir(join(cache.root, 'work'), { recursive: true });
  const workDir = await mkdtemp(join(cache.root, 'work', `build-${ownerTag()}-`));
  const unregister = onInterrupt(() => rm(workDir, { recursive: true, force: true }));
  try {
    const ctx = stageContext(plan, opts, { cache, workDir, agent, sourceDateEpoch: sde });
    const qemu = await guestQemu(plan.arch);
    const jobs = [...artifactJobs(ctx), ...(plan.bootTest ? bootTestJobs(ctx, { opts, workDir, qemu, fallbackKernel }) : [])];
    const done = await runDag(jobs, plan.jobs);
    const rootfs = plan.rootfs.map((r) => done[`rootfs:${r.role}`] as RootfsArtifact);
    const kernels = plan.kernels.map((k) => done[`kernel:${k.variant}`] as KernelArtifact);
    const bootTests = jobs.filter((j) => j.id.startsWith('boot:')).map((j) => done[j.id] as BootTest);

    const notes = plan.bootTest ? [] : ['not boot-tested (--no-boot-test): manifest.json says "bootTested": false'];
    const planned = await planInstall(plan, { rootfs, kernels, bootTests, agent: { source: agent.source, sha256: agent.sha256 }, sourceDateEpoch: sde, qemu });
    notes.push(...planned.notes);
    const install = await step(`install into ${plan.shareDir}`, () => writeInstall(plan.prefix, planned.entries, plan.force));
    if (bootTests.length && bootTests.every((b) => b.cached)) notes.push('boot tests skipped: these exact artifacts already passed them');
    return {
      prefix: plan.prefix,
      shareDir: plan.shareDir,
      manifest: join(plan.shareDir, 'manifest.json'),
      install,
      rows: summaryRows(rootfs, kernels, bootTests),
      bootTests,
      notes,
      totalMs: Math.round(performance.now() - t0),
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
    unregister();
  }
}
