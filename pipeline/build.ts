/**
 * `osbuilder build`: rootfs → image / initrd, kernel (+ GPU variant), boot
 * test of every kernel × artifact pair, then one staged, switched install.
 * Stages run as a dependency graph (--jobs at once), each behind the cache.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BuildCache } from '../core/cache.js';
import { ContainerEngine } from '../core/docker.js';
import { onInterrupt } from '../core/cleanup.js';
import { info, step } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { parseVerityParams } from '../core/verity-params.js';
import { TOOL_VERSION } from '../core/version.js';
import { ARCH_FACTS, hostArch } from '../core/arch.js';
import { which } from '../core/exec.js';
import { runDag, type Job } from './dag.js';
import {
  DEFAULTS,
  SHARE,
  carriedEntries,
  installedTarget,
  renderQemuConfig,
  renderSha256Sums,
  writeInstall,
  type InstallEntry,
  type QemuConfigInput,
} from './install.js';
import { buildManifest } from './manifest.js';
import { checkBootTestable, planBuild, pickDebianSource, type BuildOptions, type BuildPlan } from './plan.js';
import { checkPrefix } from './prefix.js';
import {
  bootTest,
  installedFileSha256,
  kernelArtifact,
  resolveAgent,
  resolvedImage,
  rootfsArtifact,
  stageContext,
  type BootTest,
  type KernelArtifact,
  type RootfsArtifact,
} from './stages.js';
import type { SwitchOutcome } from './switch.js';
import { ownerTag } from '../core/owner.js';

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

type StageOutput = RootfsArtifact | KernelArtifact | BootTest;

/** x86_64 guests boot the compressed image; QEMU's -kernel takes it on every machine type. */
function kernelLink(variant: KernelArtifact['variant']): string {
  return variant === 'nvidia' ? 'vmlinuz-nvidia-gpu.container' : 'vmlinuz.container';
}

/** A boot test may run under TCG (no usable KVM): far slower than Kata's 45 s dial_timeout assumes. */
export const DEFAULT_BOOT_TIMEOUT_SEC = 300;

const ROOT_LINKS = { image: 'kata-containers.img', initrd: 'kata-containers-initrd.img' } as const;
/** A verity image's kernel_verity_params, installed as Kata's build_image.sh does for the base image (empty variant). */
export const VERITY_PARAMS_FILE = 'root_hash_.txt';

export async function resolveBuildPlan(opts: BuildOptions): Promise<BuildPlan> {
  const local = pickDebianSource(await readdir('/usr/src').catch(() => []));
  return planBuild(opts, local, hostArch(), availableParallelism());
}

/** The installed kernel that boot-tests this run's image/initrd when it builds no kernel. */
async function installedBootKernel(plan: BuildPlan): Promise<{ label: string; path: string; sha256: string } | undefined> {
  if (!plan.bootTest || plan.kernels.length > 0 || plan.rootfs.length === 0) return undefined;
  const path = await installedTarget(plan.prefix, 'vmlinuz.container');
  const sha256 = path ? await installedFileSha256(path) : undefined;
  return path && sha256 ? { label: `installed ${path}`, path, sha256 } : undefined;
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
  // A killed run's builder containers may still write into its work dir: stop them before removing it.
  const cleanUp = async () => {
    if (plan.rootfs.length) await new ContainerEngine(plan.engine).removeOrphans();
    const reaped = await cache.reapDead();
    if (reaped.length) info(`removed what killed runs left in the cache: ${reaped.join(', ')}`);
  };
  // The agent (a cache entry of its own, under its own lock) is resolved meanwhile.
  const [, agent] = await Promise.all([
    cleanUp(),
    plan.rootfs.length === 0 ? { path: '', sha256: '', source: 'none' } : step(`agent for ${plan.arch}`, () => resolveAgent(opts.agent, plan.arch)),
  ]);
  await mkdir(join(cache.root, 'work'), { recursive: true });
  const workDir = await mkdtemp(join(cache.root, 'work', `build-${ownerTag()}-`));
  const unregister = onInterrupt(() => rm(workDir, { recursive: true, force: true }));
  const notes: string[] = [];
  try {
    const ctx = stageContext(plan, opts, { cache, workDir, agent, sourceDateEpoch: sde });
    const guest = ARCH_FACTS[plan.arch === 'aarch64' ? 'aarch64' : 'x86_64'];
    const qemu = (await which(guest.qemuSystem)) ?? `/usr/bin/${guest.qemuSystem}`;
    const machineType = guest.qemuMachine;

    const jobs: Job<StageOutput>[] = [];
    for (const r of plan.rootfs) jobs.push({ id: `rootfs:${r.role}`, deps: [], run: () => rootfsArtifact(ctx, r) });
    for (const k of plan.kernels) jobs.push({ id: `kernel:${k.variant}`, deps: [], run: () => kernelArtifact(ctx, k) });

    if (!plan.bootTest) notes.push('not boot-tested (--no-boot-test): manifest.json says "bootTested": false');
    // Boot tests: every kernel built here with every artifact; without a kernel, the installed one.
    let seq = 0;
    if (plan.bootTest) {
      const kernelIds = plan.kernels.map((k) => `kernel:${k.variant}`);
      for (const r of plan.rootfs) {
        for (const kid of fallbackKernel ? [undefined] : kernelIds) {
          const id = `boot:${kid ?? 'installed'}:${r.role}`;
          jobs.push({
            id,
            deps: [`rootfs:${r.role}`, ...(kid ? [kid] : [])],
            run: async (deps) => {
              const a = deps[`rootfs:${r.role}`] as RootfsArtifact;
              const k = kid ? (deps[kid] as KernelArtifact) : undefined;
              const kernel = k ? { label: k.names.vmlinuz, path: k.vmlinuz, sha256: k.vmlinuzSha256 } : fallbackKernel!;
              const config = join(workDir, `boot-${++seq}.toml`);
              const verity = a.kernelVerityParams ? { kernelVerityParams: a.kernelVerityParams } : {};
              await writeFile(
                config,
                renderQemuConfig({
                  arch: plan.arch,
                  qemuPath: qemu,
                  machineType,
                  kernel: kernel.path,
                  [r.role]: a.path,
                  ...verity,
                  ...imageBoot(plan),
                  toolVersion: TOOL_VERSION,
                }),
              );
              return bootTest(ctx, kernel, { label: a.fileName, role: r.role, path: a.path, sha256: a.sha256, osRelease: a.osRelease, ...verity }, config, {
                ...(opts.accel ? { accel: opts.accel } : {}),
                timeoutSec: opts.bootTimeout ?? DEFAULT_BOOT_TIMEOUT_SEC,
              });
            },
          });
        }
      }
    }

    const done = await runDag(jobs, plan.jobs);
    const rootfs = plan.rootfs.map((r) => done[`rootfs:${r.role}`] as RootfsArtifact);
    const kernels = plan.kernels.map((k) => done[`kernel:${k.variant}`] as KernelArtifact);
    const bootTests = jobs.filter((j) => j.id.startsWith('boot:')).map((j) => done[j.id] as BootTest);

    const entries = artifactEntries(rootfs, kernels);
    // A full build makes the whole install; a partial one keeps what it does not make.
    const builtImage = plan.rootfs.some((r) => r.role === 'image');
    // The verity parameters belong to the image they were made with: a new image replaces them (or has none).
    const carried =
      plan.rootfs.length === 2 && plan.kernels.length > 0
        ? []
        : (await carriedEntries(plan.prefix, entries)).filter((c) => !(builtImage && c.path === `${SHARE}/${VERITY_PARAMS_FILE}`));
    if (carried.length) notes.push(`kept from the existing install: ${carried.map((c) => c.path.split('/').pop()).join(', ')}`);
    const verityParams = builtImage ? rootfs.find((r) => r.role === 'image')?.kernelVerityParams : await carriedVerityParams(carried);
    entries.push(...configEntries(plan, [...entries, ...carried], qemu, machineType, verityParams, builtImage ? imageBoot(plan) : {}));
    const manifest = buildManifest({
      toolVersion: TOOL_VERSION,
      arch: plan.arch,
      bootTested: plan.bootTest,
      ...(sde !== undefined ? { sourceDateEpoch: sde } : {}),
      agent: { source: agent.source, sha256: agent.sha256 },
      rootfs,
      kernels,
      bootTests,
      kept: carried.map((c) => c.path),
    });
    const all: InstallEntry[] = [...entries, ...carried, { kind: 'text', path: `${SHARE}/manifest.json`, content: `${JSON.stringify(manifest, null, 2)}\n` }];
    all.push({ kind: 'text', path: `${SHARE}/SHA256SUMS`, content: renderSha256Sums(all) });
    const install = await step(`install into ${plan.shareDir}`, () => writeInstall(plan.prefix, all, plan.force));

    const bootFor = (name: string) =>
      bootTests
        .filter((b) => b.artifact === name || b.kernel === name)
        .map((b) => (b.cached ? 'passed before' : `${b.readyMs} ms`))
        .join(', ') || '-';
    const rows: SummaryRow[] = [
      ...rootfs.map((r) => ({ artifact: r.fileName, size: r.size, sha256: r.sha256, buildMs: r.buildMs, cached: r.cached, boot: bootFor(r.fileName) })),
      ...kernels.map((k) => {
        const f = k.files.find((x) => x.name === k.names.vmlinuz)!;
        return { artifact: k.names.vmlinuz, size: f.size, sha256: f.sha256, buildMs: k.buildMs, cached: k.cached, boot: bootFor(k.names.vmlinuz) };
      }),
    ];
    if (bootTests.length && bootTests.every((b) => b.cached)) notes.push('boot tests skipped: these exact artifacts already passed them');
    return {
      prefix: plan.prefix,
      shareDir: plan.shareDir,
      manifest: join(plan.shareDir, 'manifest.json'),
      install,
      rows,
      bootTests,
      notes,
      totalMs: Math.round(performance.now() - t0),
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
    unregister();
  }
}

/** The headers tarball and the kernel's own .deb packages of a GPU kernel. */
function isKernelDevel(name: string): boolean {
  return name.startsWith('linux-headers-') || name.endsWith('.deb');
}

/** Every artifact file and link this build installs (pure). */
export function artifactEntries(rootfs: RootfsArtifact[], kernels: KernelArtifact[]): InstallEntry[] {
  const out: InstallEntry[] = [];
  const share = (name: string) => `${SHARE}/${name}`;
  for (const r of rootfs) {
    out.push({ kind: 'file', path: share(r.fileName), from: r.path, sha256: r.sha256, size: r.size });
    out.push({ kind: 'link', path: share(ROOT_LINKS[r.role]), target: r.fileName });
    if (r.kernelVerityParams) out.push({ kind: 'text', path: share(VERITY_PARAMS_FILE), content: `${r.kernelVerityParams}\n` });
  }
  for (const k of kernels) {
    for (const f of k.files) {
      const dest = isKernelDevel(f.name) ? `kernel-devel/${f.name}` : f.name;
      out.push({ kind: 'file', path: share(dest), from: f.path, sha256: f.sha256, size: f.size });
    }
    out.push({ kind: 'link', path: share(k.names.vmlinuzLink), target: k.names.vmlinuz });
    out.push({ kind: 'link', path: share(k.names.vmlinuxLink), target: k.names.vmlinux });
  }
  return out;
}

type ImageBoot = Pick<QemuConfigInput, 'rootfsType' | 'disableImageNvdimm'>;

/** How the runtime boots the image this plan builds: its filesystem, and nvdimm only with the DAX header. */
export function imageBoot(plan: Pick<BuildPlan, 'imageOptions'>): ImageBoot {
  const o = resolvedImage(plan);
  return { rootfsType: o.fsType, disableImageNvdimm: !o.dax };
}

/** The kernel_verity_params of a verity image kept from the existing install, checked as the runtime will. */
async function carriedVerityParams(carried: InstallEntry[]): Promise<string | undefined> {
  const file = carried.find((c) => c.path === `${SHARE}/${VERITY_PARAMS_FILE}`);
  if (file?.kind !== 'file') return undefined;
  const text = (await readFile(file.from, 'utf8')).trim();
  parseVerityParams(text, `${file.from} (kept from the existing install)`);
  return text;
}

/**
 * configuration-qemu.toml (and -nvidia-gpu) for what the install will hold,
 * built here or kept from before (pure): one per installed kernel link, with
 * the installed image (else the initrd).
 */
export function configEntries(
  plan: BuildPlan,
  installed: InstallEntry[],
  qemuPath: string,
  machineType: string,
  kernelVerityParams?: string,
  boot: ImageBoot = {},
): InstallEntry[] {
  const has = (name: string) => installed.some((e) => e.path === `${SHARE}/${name}`);
  const abs = (name: string) => join(plan.shareDir, name);
  const image = has(ROOT_LINKS.image) ? abs(ROOT_LINKS.image) : undefined;
  const initrd = has(ROOT_LINKS.initrd) ? abs(ROOT_LINKS.initrd) : undefined;
  if (!image && !initrd) return [];
  const variants = (['default', 'nvidia'] as const).filter((v) => has(kernelLink(v)));
  return (variants.length ? variants : (['default'] as const)).map((variant) => ({
    kind: 'text' as const,
    path: `${DEFAULTS}/${variant === 'nvidia' ? 'configuration-qemu-nvidia-gpu.toml' : 'configuration-qemu.toml'}`,
    content: renderQemuConfig({
      arch: plan.arch,
      qemuPath,
      machineType,
      kernel: abs(kernelLink(variant)),
      ...(image ? { image } : {}),
      ...(initrd ? { initrd } : {}),
      ...(image && kernelVerityParams ? { kernelVerityParams } : {}),
      ...boot,
      ...(variant === 'nvidia' ? { gpu: true } : {}),
      toolVersion: TOOL_VERSION,
    }),
  }));
}
