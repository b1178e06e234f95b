/**
 * The stages of `osbuilder build`, each behind the content-addressed cache:
 * a key hashes every input of the stage; a verified hit is reused, a miss
 * builds through the stage's public entry point and stores the result.
 */
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type BuildCache, cacheKey, type CacheEntry, type CacheInputs } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { sha256, sha256File } from '../core/hash.js';
import { memoSha256 } from '../core/memo.js';
import { step } from '../core/log.js';
import { withSafeRoot } from '../core/fs-safe.js';
import { TOOL_VERSION } from '../core/version.js';
import { buildRootfs, planRootfs, resolveRootfsOptions, PACKAGES_PATH, type RootfsOptions } from '../rootfs-builder/index.js';
import { keyString } from '../core/options.js';
import { buildImage, IMAGE_OPTIONS, resolveImageOptions, type ResolvedImageOptions } from '../image-builder/index.js';
import { buildInitrd, INITRD_OPTIONS, resolveInitrdOptions } from '../initrd-builder/index.js';
import { KERNEL_OPTIONS } from '../kernel/index.js';
import {
  buildKernel,
  defaultMakeEngine,
  fragmentsHash,
  installNames,
  obtainSource,
  planSource,
  readConfigVersion,
  setupKernel,
  type KernelOptions,
} from '../kernel/index.js';
import { checkAgentFile, defaultAgent } from '../rootfs-builder/index.js';
import { BUILD_SOURCE_FLAGS, type BuildOptions, type BuildPlan, type KernelJob, type RootfsJob } from './plan.js';

export interface StageContext {
  plan: BuildPlan;
  cache: BuildCache;
  /** Scratch space of this build (rootfs trees); removed when the build ends. */
  workDir: string;
  agent: { path: string; sha256: string; source: string };
  sourceDateEpoch?: number;
  extraPackages: string[];
  mirror?: string;
  baseImage?: string;
  /** Keep each rootfs tree in workDir (for --verify-reproducible). */
  keepRootfs?: boolean;
  /** --no-package-cache. */
  noPackageCache?: boolean;
}

/** The agent the rootfs stages install: --agent, checked for the arch, else osbuilder's own. */
export async function resolveAgent(agentPath: string | undefined, arch: BuildPlan['arch']): Promise<StageContext['agent']> {
  const a = agentPath ? await checkAgentFile(resolve(agentPath), arch) : await defaultAgent(arch);
  return { path: a.path, sha256: await memoSha256(a.path), source: a.source };
}

/** A stage context from the build options (what every rootfs stage reads of them). */
export function stageContext(
  plan: BuildPlan,
  opts: Pick<BuildOptions, 'extraPackages' | 'mirror' | 'baseImage' | 'noPackageCache'>,
  parts: Pick<StageContext, 'cache' | 'workDir' | 'agent'> & { sourceDateEpoch?: number | undefined; keepRootfs?: boolean },
): StageContext {
  return {
    plan,
    cache: parts.cache,
    workDir: parts.workDir,
    agent: parts.agent,
    ...(parts.sourceDateEpoch !== undefined ? { sourceDateEpoch: parts.sourceDateEpoch } : {}),
    extraPackages: opts.extraPackages ?? [],
    ...(opts.mirror ? { mirror: opts.mirror } : {}),
    ...(opts.baseImage ? { baseImage: opts.baseImage } : {}),
    ...(parts.keepRootfs ? { keepRootfs: true } : {}),
    ...(opts.noPackageCache ? { noPackageCache: true } : {}),
  };
}

/** The stage's cache entry: a verified hit (unless the cache is off), else built once and stored. */
export function cachedStage<M>(
  ctx: StageContext,
  stage: string,
  inputs: CacheInputs,
  produce: (dir: string) => Promise<M>,
): Promise<{ entry: CacheEntry<M>; cached: boolean }> {
  return ctx.cache.obtain(stage, cacheKey(inputs), inputs, produce, ctx.plan.cache);
}

// ---------------------------------------------------------------- rootfs + image/initrd

export interface RootfsArtifact {
  role: RootfsJob['role'];
  distro: string;
  version: string;
  initMode: 'systemd' | 'agent-init';
  fileName: string;
  /** The artifact in the cache entry. */
  path: string;
  sha256: string;
  size: number;
  /** name=version, from the rootfs. */
  packages: string[];
  /** The rootfs's /etc/os-release, which the boot test compares with the guest's. */
  osRelease: string;
  key: string;
  inputs: CacheInputs;
  cached: boolean;
  buildMs: number;
  /** With keepRootfs: the rootfs tree it was made from. */
  rootfsDir?: string;
  /** A verity image's kernel_verity_params (its root_hash.txt files are in the entry, beside it). */
  kernelVerityParams?: string;
}

interface RootfsMeta {
  buildMs: number;
  packages: string[];
  osRelease: string;
  initMode: 'systemd' | 'agent-init';
  kernelVerityParams?: string;
}

/** The image options with buildImage's defaults filled in (rootfs and output aside). */
export function resolvedImage(plan: Pick<BuildPlan, 'imageOptions'>): ResolvedImageOptions {
  return resolveImageOptions({ rootfs: '/', output: '/', ...plan.imageOptions, sourceDateEpoch: null });
}

/** What the image/initrd stage adds to a rootfs: every output-changing option, resolved. */
export function artifactInputs(plan: Pick<BuildPlan, 'imageOptions' | 'initrdOptions'>, role: RootfsJob['role']): string {
  return role === 'image' ? keyString(IMAGE_OPTIONS, { ...resolvedImage(plan) }) : keyString(INITRD_OPTIONS, resolveInitrdOptions(plan.initrdOptions));
}

export function rootfsOptionsFor(ctx: StageContext, job: RootfsJob, output: string): RootfsOptions {
  const extra = job.distro.extraPackages ? ctx.extraPackages : [];
  return {
    distro: job.distro.name,
    output,
    osVersion: job.version,
    arch: ctx.plan.arch,
    engine: ctx.plan.engine,
    agent: ctx.agent.path,
    agentInit: job.agentInit,
    ...(extra.length ? { extraPackages: extra } : {}),
    ...(ctx.mirror ? { mirror: ctx.mirror } : {}),
    // The base: rootfs-builder's chooseBase (made locally for Debian-based builders) unless given.
    ...(ctx.baseImage ? { baseImage: ctx.baseImage } : {}),
    ...(ctx.noPackageCache ? { packageCache: false } : {}),
  };
}

/**
 * The rootfs stage's inputs are its whole plan (definition, Dockerfile text,
 * package list, mirror, base image, file operations), planned for a fixed
 * output path, plus the agent's sha256 and what the artifact stage adds.
 */
export function rootfsInputs(ctx: StageContext, job: RootfsJob): CacheInputs {
  const opts = rootfsOptionsFor(ctx, job, '/osbuilder/rootfs');
  const plan = planRootfs(resolveRootfsOptions(opts), {
    toolVersion: TOOL_VERSION,
    ...(ctx.sourceDateEpoch !== undefined ? { sourceDateEpoch: ctx.sourceDateEpoch } : {}),
  });
  // The package cache changes no output: never part of the key (planned without a cache root, it is absent anyway).
  const { agent: _agent, packageCache: _packageCache, ...rest } = plan;
  return {
    tool: TOOL_VERSION,
    role: job.role,
    rootfsPlan: sha256(JSON.stringify(rest)),
    agent: ctx.agent.sha256,
    sourceDateEpoch: ctx.sourceDateEpoch ?? null,
    artifact: artifactInputs(ctx.plan, job.role),
  };
}

export async function rootfsArtifact(ctx: StageContext, job: RootfsJob): Promise<RootfsArtifact> {
  const inputs = rootfsInputs(ctx, job);
  const rootfsDir = join(ctx.workDir, `${job.role}-rootfs`);
  const built = await cachedStage<RootfsMeta>(ctx, job.role, inputs, async (dir) => {
    const t0 = performance.now();
    const r = await step(`rootfs ${job.distro.name} ${job.version} (${job.agentInit ? 'agent as init' : 'systemd'}) for the ${job.role}`, () =>
      buildRootfs(rootfsOptionsFor(ctx, job, rootfsDir)),
    );
    const out = join(dir, job.fileName);
    let kernelVerityParams: string | undefined;
    if (job.role === 'image') {
      const o = ctx.plan.imageOptions;
      const image = await step(`image ${job.fileName}${o.fsType ? ` (${o.fsType})` : ''}${o.verity ? ' (dm-verity)' : ''}`, () =>
        buildImage({ rootfs: rootfsDir, output: out, ...o }),
      );
      kernelVerityParams = image.verity?.kernelVerityParams;
    } else {
      await step(`initrd ${job.fileName}`, () => buildInitrd({ rootfs: rootfsDir, output: out, ...ctx.plan.initrdOptions }));
    }
    const [packages, osRelease] = await withSafeRoot(rootfsDir, async (fs) => [
      (await fs.readText(PACKAGES_PATH)) ?? '',
      (await fs.readText('/etc/os-release')) ?? '',
    ]);
    if (!ctx.keepRootfs) await rm(rootfsDir, { recursive: true, force: true });
    return {
      buildMs: Math.round(performance.now() - t0),
      packages: packages.split('\n').filter(Boolean),
      osRelease,
      initMode: r.initMode as RootfsMeta['initMode'],
      ...(kernelVerityParams ? { kernelVerityParams } : {}),
    };
  });
  const f = built.entry.files[job.fileName]!;
  return {
    role: job.role,
    distro: job.distro.name,
    version: job.version,
    initMode: built.entry.meta.initMode,
    fileName: job.fileName,
    path: join(built.entry.dir, job.fileName),
    sha256: f.sha256,
    size: f.size,
    packages: built.entry.meta.packages,
    osRelease: built.entry.meta.osRelease,
    key: built.entry.key,
    inputs,
    cached: built.cached,
    buildMs: built.entry.meta.buildMs,
    ...(ctx.keepRootfs && !built.cached ? { rootfsDir } : {}),
    ...(built.entry.meta.kernelVerityParams ? { kernelVerityParams: built.entry.meta.kernelVerityParams } : {}),
  };
}

// ---------------------------------------------------------------- kernel

export interface KernelArtifact {
  variant: KernelJob['variant'];
  version: string;
  release: string;
  configVersion: string;
  configSha256: string;
  source: { origin: string; sha256: string };
  fragmentsHash: string;
  /** Files in the cache entry, by their Kata install names. */
  files: Array<{ name: string; path: string; sha256: string; size: number }>;
  names: ReturnType<typeof installNames>;
  /** The boot image (bzImage / Image) to boot-test with. */
  vmlinuz: string;
  vmlinuzSha256: string;
  /** The kernel-devel headers tarball (GPU variant: built with modules). */
  headersTarball?: string;
  key: string;
  inputs: CacheInputs;
  cached: boolean;
  buildMs: number;
}

interface KernelMeta {
  version: string;
  release: string;
  configVersion: string;
  buildMs: number;
}

/** Kernel trees are kept between builds (make is incremental), one per version, arch and variant. */
function kernelTree(ctx: StageContext, version: string, variant: string): string {
  return join(ctx.cache.root, 'kernel-trees', `linux-${version}-${ctx.plan.arch}${variant === 'default' ? '' : `-${variant}`}`);
}

type KernelSource = Awaited<ReturnType<typeof obtainSource>>;

/** The extra fragments' sha256s, in order: the key has their content, not their paths. */
async function fragmentShas(paths: string[]): Promise<string[]> {
  return Promise.all(
    paths.map((p) =>
      sha256File(p).catch(() => {
        throw new OsbuilderError('INPUT_NOT_FOUND', `fragment ${p} cannot be read`, 'give the path of a kernel config fragment file (CONFIG_X=y lines)');
      }),
    ),
  );
}

/**
 * The kernel stage's key inputs: the tarball by its sha256, the version, arch
 * and variant, our fragments and config version, the epoch, and the other
 * KERNEL_OPTIONS (confidential, extra fragments by content) as one line, only
 * when any is set (so the default kernel's key is what it was before the table).
 */
export async function kernelInputs(ctx: StageContext, job: KernelJob, sourceSha256: string): Promise<CacheInputs> {
  const cfg = ctx.plan.kernelConfig ?? { fragments: [] };
  const options = keyString(KERNEL_OPTIONS, { ...cfg, fragments: await fragmentShas(cfg.fragments) });
  return {
    tool: TOOL_VERSION,
    source: sourceSha256,
    version: ctx.plan.kernelSource!.version ?? null,
    arch: ctx.plan.arch,
    variant: job.variant,
    fragments: fragmentsHash(),
    configVersion: readConfigVersion(),
    sourceDateEpoch: ctx.sourceDateEpoch ?? null,
    ...(options ? { options } : {}),
  };
}

/** What setupKernel and buildKernel are told of the kernel to make in `tree`. */
export function kernelStageOptions(plan: BuildPlan, job: KernelJob, tree: string): KernelOptions {
  const cfg = plan.kernelConfig ?? { fragments: [] };
  const version = plan.kernelSource!.version;
  return {
    ...(version ? { version } : {}),
    arch: plan.arch,
    kernelDir: tree,
    ...(job.variant === 'nvidia' ? { gpu: 'nvidia' } : {}),
    ...(cfg.confidential ? { confidential: cfg.confidential } : {}),
    ...(cfg.fragments.length ? { fragments: cfg.fragments } : {}),
  };
}

/** The kernel's source as the plan chose it (kernel.org, a tarball or Debian's linux-source), checked. */
function kernelSource(ctx: StageContext): Promise<KernelSource> {
  const choice = ctx.plan.kernelSource!;
  const spec = planSource({
    ...(choice.kind === 'kernel.org' ? { version: choice.version } : { source: choice.source }),
    ...(choice.sha256 ? { sha256: choice.sha256 } : {}),
    flags: BUILD_SOURCE_FLAGS,
  });
  return step(`kernel source ${spec.location}`, () => obtainSource(spec));
}

/** The headers tarball's name in a kernel cache entry. */
const headersTarballName = (release: string) => `linux-headers-${release}.tar.gz`;

/** Builds the kernel in its kept tree and copies its install files into the cache entry `dir`. */
async function buildKernelEntry(ctx: StageContext, job: KernelJob, src: KernelSource, configVersion: string, tree: string, dir: string): Promise<KernelMeta> {
  const t0 = performance.now();
  const gpu = job.variant === 'nvidia' ? 'nvidia' : undefined;
  await mkdir(join(ctx.cache.root, 'kernel-trees'), { recursive: true });
  const common = kernelStageOptions(ctx.plan, job, tree);
  const setup = await step(`kernel setup ${job.variant}`, () => setupKernel({ ...common, source: src.tarball, sha256: src.sha256, force: true }));
  const engine = await defaultMakeEngine(ctx.plan.arch);
  const b = await step(`kernel build ${job.variant} (${engine})`, () => buildKernel({ ...common, version: setup.version, engine, jobs: ctx.plan.makeJobs }));
  const names = installNames({ prefix: '/', version: setup.version, configVersion, ...(gpu ? { gpu } : {}) });
  await copyFile(b.vmlinuz!, join(dir, names.vmlinuz));
  await copyFile(b.vmlinux!, join(dir, names.vmlinux));
  await copyFile(b.config, join(dir, names.config));
  // GPU guests: the kernel-devel material the NVIDIA driver builds against.
  if (b.headersTarball) await copyFile(b.headersTarball, join(dir, headersTarballName(b.kernelRelease)));
  for (const deb of b.debs ?? []) await copyFile(deb, join(dir, basename(deb)));
  return { version: setup.version, release: b.kernelRelease, configVersion, buildMs: Math.round(performance.now() - t0) };
}

/** The artifact of a kernel cache entry: its files by install name, the boot image and config required. */
function kernelFromEntry(job: KernelJob, built: { entry: CacheEntry<KernelMeta>; cached: boolean }, src: KernelSource, inputs: CacheInputs): KernelArtifact {
  const m = built.entry.meta;
  const gpu = job.variant === 'nvidia' ? 'nvidia' : undefined;
  const names = installNames({ prefix: '/', version: m.version, configVersion: m.configVersion, ...(gpu ? { gpu } : {}) });
  const files = Object.entries(built.entry.files).map(([name, f]) => ({ name, path: join(built.entry.dir, name), sha256: f.sha256, size: f.size }));
  const vmlinuz = files.find((f) => f.name === names.vmlinuz);
  const config = files.find((f) => f.name === names.config);
  const headers = files.find((f) => f.name === headersTarballName(m.release));
  if (!vmlinuz || !config)
    throw new OsbuilderError(
      'CACHE_CORRUPT',
      `kernel cache entry ${built.entry.dir} lacks ${names.vmlinuz} or ${names.config}`,
      'osbuilder cache prune --keep 0, then build again',
    );
  return {
    variant: job.variant,
    version: m.version,
    release: m.release,
    configVersion: m.configVersion,
    configSha256: config.sha256,
    source: { origin: src.origin, sha256: src.sha256 },
    fragmentsHash: String(inputs.fragments),
    files,
    names,
    vmlinuz: vmlinuz.path,
    vmlinuzSha256: vmlinuz.sha256,
    ...(headers ? { headersTarball: headers.path } : {}),
    key: built.entry.key,
    inputs,
    cached: built.cached,
    buildMs: m.buildMs,
  };
}

export async function kernelArtifact(ctx: StageContext, job: KernelJob): Promise<KernelArtifact> {
  const src = await kernelSource(ctx);
  const inputs = await kernelInputs(ctx, job, src.sha256);
  const tree = kernelTree(ctx, ctx.plan.kernelSource!.version ?? src.sha256.slice(0, 12), job.variant);
  // Builds with other inputs (an epoch, a config version) share the tree: one at a time.
  const built = await cachedStage<KernelMeta>(ctx, `kernel-${job.variant}`, inputs, (dir) =>
    ctx.cache.withLock('kernel-trees', basename(tree), () => buildKernelEntry(ctx, job, src, String(inputs.configVersion), tree, dir)),
  );
  return kernelFromEntry(job, built, src, inputs);
}

/** An existing regular file's sha256 (for a kernel taken from an install), else undefined. */
export async function installedFileSha256(path: string): Promise<string | undefined> {
  const st = await stat(path).catch(() => undefined);
  return st?.isFile() ? sha256File(path) : undefined;
}
