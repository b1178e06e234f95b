/**
 * The per-build plan: plain data computed from validated options, with no
 * I/O beyond reading our own templates. Same inputs, same plan.
 */
import { internalError } from '../core/errors.js';
import { sha256 } from '../core/hash.js';
import { type Arch, ARCH_FACTS } from '../core/arch.js';
import type { BootstrapInput, Command, FileOp, InitMode, PackageSource } from '../distros/index.js';
import { renderDockerfile } from './dockerfile.js';
import { planPackageCache, type PackageCachePlan } from './package-cache.js';
import { depmodStreamArgv } from './stream.js';
import { resolveRootfsOptions, type BaseImageChoice, type Engine, type ResolvedRootfsOptions, type RootfsOptions } from './options.js';
import { AGENT_PATH, systemdOps } from './systemd.js';

/** Where the rootfs is mounted in the builder container. */
export const CONTAINER_ROOT = '/rootfs';
export const METADATA_PATH = '/var/lib/osbuilder/osbuilder.yaml';
export const PACKAGES_PATH = '/var/lib/osbuilder/packages.txt';

export interface RootfsPlan {
  distro: string;
  version: string;
  arch: Arch;
  initMode: InitMode;
  engine: Engine;
  output: string;
  packages: { default: string[]; extra: string[]; all: string[] };
  mirror: string;
  /** Builder base image and where it comes from (container engines only). */
  base?: BaseImageChoice & { bootstrapArgv?: string[] };
  builder?: {
    /** Tag prefix; the executor appends a hash of the Dockerfile, build args and base image id. */
    repository: string;
    dockerfile: string;
    buildArgs: Record<string, string>;
    platform?: string;
  };
  container?: {
    mountPoint: string;
    env: Record<string, string>;
    ulimits: string[];
    platform?: string;
  };
  /** Path of the rootfs as the bootstrap commands see it. */
  root: string;
  bootstrap: Command[];
  bootstrapInput: BootstrapInput;
  packageSource: PackageSource;
  /** Applied after the distro's own post-bootstrap operations. */
  fileOps: FileOp[];
  agent: { source?: string; dest: string; init: boolean };
  kernelModules?: { from: string; kver: string; dest: string; depmod: Command };
  metadata: { path: string; packagesPath: string };
  sourceDateEpoch?: number;
  toolVersion: string;
  /** Downloaded packages reused across builds; changes no output, so no cache key includes it. */
  packageCache?: PackageCachePlan;
  /**
   * The engine does not share this machine's filesystem: the tree is filled in a
   * volume on its side and streamed back. Set only when true, so plans of local
   * and native builds (which cache keys hash) do not change.
   */
  remoteEngine?: true;
}

export interface PlanContext {
  toolVersion: string;
  sourceDateEpoch?: number;
  /** The build cache's root, where package caches live; unset: no package cache (cache keys plan without it). */
  packageCacheRoot?: string;
  /** The engine does not share this machine's filesystem (the package cache is a volume on its side). */
  remoteEngine?: boolean;
  /** For --engine native: the host path being filled (the temp dir). Containers use /rootfs. */
  nativeRoot?: string;
}

/** Kata's setup_rootfs and image builder, plus what reproducible images need removed. */
function commonOps(initMode: InitMode): FileOp[] {
  const ops: FileOp[] = [];
  // The agent bind-mounts the container's resolv.conf over this file, so it must be a plain file.
  ops.push({ op: 'write', path: '/etc/resolv.conf', content: '', mode: 0o644 });
  // Empty: systemd then treats the machine id as unset and bind-mounts a transient one.
  ops.push({ op: 'write', path: '/etc/machine-id', content: '', mode: 0o444 });
  ops.push({ op: 'remove', path: '/var/lib/dbus/machine-id' });
  // /var/tmp -> ../tmp (private temporary directories with systemd on a read-only root).
  ops.push({ op: 'remove', path: '/var/tmp', recursive: true }, { op: 'symlink', path: '/var/tmp', target: '../tmp' });
  // Build leftovers that differ between builds.
  for (const p of ['/var/log', '/var/cache/apt', '/var/lib/apt/lists', '/var/cache/dnf', '/var/cache/yum', '/var/cache/apk']) {
    ops.push({ op: 'remove-files-under', path: p });
  }
  for (const p of [
    '/var/cache/ldconfig/aux-cache',
    '/var/lib/systemd/random-seed',
    '/var/lib/dpkg/status-old',
    '/var/lib/dpkg/diversions-old',
    '/var/lib/dpkg/statoverride-old',
    '/var/lib/dpkg/available-old',
    '/var/cache/debconf/config.dat-old',
    '/var/cache/debconf/templates.dat-old',
    '/var/cache/debconf/passwords.dat-old',
  ]) {
    ops.push({ op: 'remove', path: p });
  }
  // Fixed, so two builds match (bootstrap tools may copy the build host's name); the agent sets the sandbox's.
  ops.push({ op: 'write', path: '/etc/hostname', content: 'localhost\n', mode: 0o644 });
  if (initMode === 'agent-init') {
    // Kata moves the agent to /sbin/init; we link, so /usr/bin/kata-agent stays where tools expect it.
    ops.push({ op: 'symlink', path: '/sbin/init', target: AGENT_PATH }, { op: 'symlink', path: '/init', target: AGENT_PATH });
  } else {
    // An initrd boots /init: point it at systemd's /sbin/init when the distro has none.
    ops.push({ op: 'symlink', path: '/init', target: '/sbin/init', unless: '/init' });
  }
  return ops;
}

export function planRootfs(options: RootfsOptions | ResolvedRootfsOptions, ctx: PlanContext): RootfsPlan {
  const r: ResolvedRootfsOptions = 'packages' in options && 'initMode' in options ? options : resolveRootfsOptions(options as RootfsOptions);
  const d = r.distro;
  const container = r.engine !== 'native';
  // Decided here once: a remote engine fills a volume on its side (rootfs-builder/stream.ts).
  const remote = container && ctx.remoteEngine === true;
  const root = container ? CONTAINER_ROOT : (ctx.nativeRoot ?? `${r.output}.tmp`);
  const input: BootstrapInput = {
    version: r.version,
    arch: r.arch,
    initMode: r.initMode,
    packages: r.packages,
    mirror: r.mirror,
    root,
    builderArch: r.builderArch,
  };
  const plan: RootfsPlan = {
    distro: d.name,
    version: r.version,
    arch: r.arch,
    initMode: r.initMode,
    engine: r.engine,
    output: r.output,
    packages: { default: r.defaultPackages, extra: r.extraPackages, all: r.packages },
    mirror: r.mirror,
    root,
    bootstrap: d.bootstrap(input),
    bootstrapInput: input,
    packageSource: d.packageSource(input),
    fileOps: planFileOps(r, ctx.toolVersion),
    agent: { dest: AGENT_PATH, init: r.initMode === 'agent-init', ...(r.agent ? { source: r.agent } : {}) },
    metadata: { path: METADATA_PATH, packagesPath: PACKAGES_PATH },
    toolVersion: ctx.toolVersion,
  };
  if (remote) plan.remoteEngine = true;
  if (ctx.sourceDateEpoch !== undefined) plan.sourceDateEpoch = ctx.sourceDateEpoch;
  const pc = r.packageCache ? planPackageCache(d, input, ctx.packageCacheRoot, !container ? 'native' : remote ? 'remote' : 'local') : undefined;
  if (pc) plan.packageCache = pc;
  if (container && r.base) Object.assign(plan, planContainer(r, r.base, ctx.sourceDateEpoch));
  if (r.kernelModules) plan.kernelModules = planKernelModules(r.kernelModules.dir, r.kernelModules.kver, root, remote);
  return plan;
}

/** The guest's configuration: systemd units (systemd mode), chrony fixes, then commonOps. */
function planFileOps(r: ResolvedRootfsOptions, toolVersion: string): FileOp[] {
  const d = r.distro;
  const fileOps: FileOp[] = [];
  if (r.initMode === 'systemd') {
    fileOps.push(...systemdOps(toolVersion));
  }
  if (d.chrony) {
    if (d.chrony.conf.length) fileOps.push({ op: 'transform', paths: d.chrony.conf, transform: 'chrony-conf' });
    if (d.chrony.service.length) fileOps.push({ op: 'transform', paths: d.chrony.service, transform: 'chrony-service' });
  }
  fileOps.push(...commonOps(r.initMode));
  return fileOps;
}

/** The builder's base, image and container of a container-engine plan. */
function planContainer(
  r: ResolvedRootfsOptions,
  base: BaseImageChoice,
  sourceDateEpoch: number | undefined,
): Required<Pick<RootfsPlan, 'base' | 'builder' | 'container'>> {
  const cross = r.builderArch !== r.hostArch;
  const planBase: RootfsPlan['base'] = { ...base };
  if (base.kind === 'bootstrap') {
    planBase.bootstrapArgv = localBaseArgv(base.suite, base.arch, base.mirror, base.include);
  }
  const buildArgs: Record<string, string> = {};
  if (r.mirrorGiven) buildArgs.MIRROR = r.mirror;
  const env: Record<string, string> = { DEBIAN_FRONTEND: 'noninteractive' };
  if (sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(sourceDateEpoch);
  return {
    base: planBase,
    builder: {
      repository: `osbuilder/rootfs-builder-${r.distro.name}`,
      dockerfile: renderDockerfile(r.distro, r.version, r.arch, base.ref),
      buildArgs,
      ...(cross ? { platform: ARCH_FACTS[r.arch].ociPlatform } : {}),
    },
    container: {
      mountPoint: CONTAINER_ROOT,
      env,
      // dpkg and apt close every possible fd on each fork; a huge nofile limit makes that slow.
      // An explicit nproc too: podman otherwise copies limits runc may not be allowed to set.
      ulimits: ['nofile=1024:1024', 'nproc=4096:4096'],
      ...(cross ? { platform: ARCH_FACTS[r.arch].ociPlatform } : {}),
    },
  };
}

/** Kernel modules copied to /lib/modules/<kver>, and depmod for them. */
function planKernelModules(from: string, kver: string, root: string, remote: boolean): NonNullable<RootfsPlan['kernelModules']> {
  return {
    from,
    kver,
    dest: `/lib/modules/${kver}`,
    // On a remote engine the modules are streamed in (stdin) and modules.* back (stdout): no shared path.
    depmod: { title: `depmod ${kver}`, argv: remote ? depmodStreamArgv(kver) : ['depmod', '-b', root, kver] },
  };
}

/** mmdebstrap arguments making the base image tar on stdout (for `docker import`). */
export function localBaseArgv(suite: string, arch: Arch, mirror: string, include: string[]): string[] {
  return ['--variant=minbase', `--arch=${ARCH_FACTS[arch].debArch}`, ...(include.length ? [`--include=${include.join(',')}`] : []), suite, '-', mirror];
}

/** Tag of the builder image: changes whenever what goes into it changes. */
export function builderTag(plan: RootfsPlan, baseImageId: string): string {
  if (!plan.builder) throw internalError('no builder in a native plan');
  const key = sha256(
    JSON.stringify({ dockerfile: plan.builder.dockerfile, args: plan.builder.buildArgs, platform: plan.builder.platform ?? '', base: baseImageId }),
  );
  return `${plan.builder.repository}:${plan.version}-${plan.arch}-${key.slice(0, 12)}`;
}

/** Kernel modules named by version; `dir`'s own name is the version, as in Kata's copy_kernel_modules. */
export { isKernelRelease } from './options.js';
