/**
 * What `osbuilder build` will make (pure): which artifacts, from which distros
 * and init modes, which kernel source, where they are installed. Everything
 * here is decided before any work starts, so bad input fails at once.
 */
import { join, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { GUEST_ARCHES, isGuestArch, parseArch, type Arch } from '../core/arch.js';
import { getDistro, resolveVersion, type DistroDefinition } from '../distros/index.js';
import { CONFIDENTIAL_GUESTS } from '../kernel/index.js';
import { givenFlags } from '../core/options.js';
import { IMAGE_OPTIONS, resolveImageOptions, type ImageOptionValues } from '../image-builder/index.js';
import { INITRD_OPTIONS, resolveInitrdOptions, type InitrdOptionValues } from '../initrd-builder/index.js';
import { normaliseSha256, parseKernelVersion } from '../kernel/index.js';
import { ACCELS } from '../runtime/index.js';

export interface BuildOptions {
  /** Distro of the image (and of the initrd when given); default debian image + busybox initrd. */
  distro?: string;
  /** Distro of the initrd (default: `distro`, else busybox). */
  initrdDistro?: string;
  osVersion?: string;
  image?: boolean;
  initrd?: boolean;
  kernel?: boolean;
  /** -g nvidia: the GPU kernel variant too. */
  gpu?: string;
  /** The image stage's output options (IMAGE_OPTIONS), e.g. verity: a dm-verity image booted and installed with its kernel_verity_params. */
  imageOptions?: ImageOptionValues;
  /** The initrd stage's output options (INITRD_OPTIONS). */
  initrdOptions?: InitrdOptionValues;
  arch?: string;
  /** Install root: artifacts go to <prefix>/usr/share/kata-containers. */
  prefix?: string;
  jobs?: number;
  /** make -j of each kernel build. */
  makeJobs?: number;
  noCache?: boolean;
  /** Download every package (the package cache changes no output, so no key includes it). */
  noPackageCache?: boolean;
  noBootTest?: boolean;
  force?: boolean;
  verifyReproducible?: boolean;
  engine?: string;
  dockerHost?: string;
  agent?: string;
  extraPackages?: string[];
  mirror?: string;
  baseImage?: string;
  kernelVersion?: string;
  kernelSource?: string;
  kernelSha256?: string;
  /** The kernel's confidential guest fragments (KERNEL_OPTIONS). */
  confidential?: string;
  /** Extra kernel config fragments, merged last (KERNEL_OPTIONS). */
  fragments?: string[];
  accel?: string;
  /** Seconds a boot test may take to reach the agent. */
  bootTimeout?: number;
}

export type RootfsRole = 'image' | 'initrd';

export interface RootfsJob {
  role: RootfsRole;
  distro: DistroDefinition;
  version: string;
  agentInit: boolean;
  /** Installed file name, Kata's release style: kata-<distro>-<version>.<role>. */
  fileName: string;
}

export interface KernelJob {
  variant: 'default' | 'nvidia';
}

export type KernelSourceChoice =
  | { kind: 'given'; source: string; version?: string; sha256?: string }
  | { kind: 'debian-package'; source: string; version: string; sha256?: string }
  | { kind: 'kernel.org'; version: string; sha256?: string };

export interface KernelConfig {
  confidential?: (typeof CONFIDENTIAL_GUESTS)[number];
  fragments: string[];
}

export interface BuildPlan {
  arch: Arch;
  prefix: string;
  shareDir: string;
  defaultsDir: string;
  rootfs: RootfsJob[];
  kernels: KernelJob[];
  kernelSource?: KernelSourceChoice;
  /** What every kernel built is configured with beside its variant (absolute fragment paths). */
  kernelConfig?: KernelConfig;
  jobs: number;
  /** make -j of each kernel build. */
  makeJobs: number;
  cache: boolean;
  bootTest: boolean;
  force: boolean;
  verifyReproducible: boolean;
  engine: 'docker' | 'podman';
  /** What buildImage / buildInitrd are given, beside the rootfs and the output. */
  imageOptions: ImageOptionValues;
  initrdOptions: InitrdOptionValues;
}

/** The build's initrds are root-owned unless --no-root-owned (a guest's files belong to root). */
export const BUILD_INITRD_DEFAULTS: InitrdOptionValues = { rootOwned: true };

/** Kata 3.x guest kernels are 6.x LTS; used when nothing local is found and -v is not given. */
export const DEFAULT_KERNEL_VERSION = '6.12.47';

/** A `linux-source-<ver>.tar.xz` as Debian's linux-source package installs it. */
export interface LocalKernelSource {
  path: string;
  version: string;
}

/** The newest Debian linux-source tarball among `names` in /usr/src (pure). */
export function pickDebianSource(names: string[], dir = '/usr/src'): LocalKernelSource | undefined {
  const found = names
    .map((n) => /^linux-source-(\d+\.\d+)\.tar\.xz$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ path: `${dir}/${m[0]}`, version: m[1]! }))
    .sort((a, b) => {
      const [am, an] = a.version.split('.').map(Number);
      const [bm, bn] = b.version.split('.').map(Number);
      return am! - bm! || an! - bn!;
    });
  return found.at(-1);
}

/** The flags `osbuilder build` takes for the kernel tarball, named in hints. */
export const BUILD_SOURCE_FLAGS = { source: '--kernel-source', sha256: '--kernel-sha256' };

/**
 * The best kernel source: --kernel-source, else Debian's linux-source package
 * when installed (and no other -v was asked for), else kernel.org. A
 * --kernel-sha256 goes with whichever is chosen: it is always enforced.
 */
export function chooseKernelSource(
  opts: Pick<BuildOptions, 'kernelSource' | 'kernelVersion' | 'kernelSha256'>,
  local: LocalKernelSource | undefined,
): KernelSourceChoice {
  const version = opts.kernelVersion !== undefined ? parseKernelVersion(opts.kernelVersion) : undefined;
  const sha256 = normaliseSha256(opts.kernelSha256, BUILD_SOURCE_FLAGS.sha256);
  const checked = sha256 ? { sha256 } : {};
  if (opts.kernelSource) return { kind: 'given', source: opts.kernelSource, ...(version ? { version } : {}), ...checked };
  if (local && (!version || version === local.version)) return { kind: 'debian-package', source: local.path, version: local.version, ...checked };
  return { kind: 'kernel.org', version: version ?? DEFAULT_KERNEL_VERSION, ...checked };
}

function rootfsJob(role: RootfsRole, name: string, osVersion: string | undefined): RootfsJob {
  const distro = getDistro(name);
  const version = resolveVersion(distro, osVersion);
  if (version === undefined) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${distro.name} has no version "${osVersion}"; versions: ${distro.versions.map((v) => v.id).join(', ')}`,
      `pick one with --os-version; default ${distro.defaultVersion}`,
    );
  }
  let agentInit: boolean;
  if (role === 'initrd') {
    // An initrd boots /init: the agent must be init (Kata's AGENT_INIT=yes).
    if (!distro.initModes.includes('agent-init')) {
      throw new OsbuilderError(
        'UNSUPPORTED',
        `${distro.name} cannot run the agent as init, so it cannot make an initrd`,
        'pick another --initrd-distro (e.g. busybox or debian)',
      );
    }
    agentInit = true;
  } else {
    // Images boot systemd where the distro has it, as Kata's do.
    agentInit = !distro.initModes.includes('systemd');
  }
  return { role, distro, version, agentInit, fileName: `kata-${distro.name}-${version}.${role}` };
}

/**
 * make -j of each kernel build: as given, else the cores split among the
 * kernels built at once (two kernels each given every core would fight).
 */
export function makeJobs(given: number | undefined, cores: number, concurrentKernels: number): number {
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 1) throw new OsbuilderError('USAGE', `--make-jobs must be a positive integer, got ${given}`, 'e.g. --make-jobs 2');
    return given;
  }
  return Math.max(1, Math.floor(cores / Math.max(1, concurrentKernels)));
}

/** The kernel's confidential type, checked now, and its extra fragments by absolute path. */
export function kernelConfig(opts: Pick<BuildOptions, 'confidential' | 'fragments'>): KernelConfig {
  const c = opts.confidential;
  if (c !== undefined && !(CONFIDENTIAL_GUESTS as readonly string[]).includes(c))
    throw new OsbuilderError('USAGE', `unknown confidential guest type ${JSON.stringify(c)}`, `use --confidential ${CONFIDENTIAL_GUESTS.join(', ')}`);
  return { ...(c ? { confidential: c as KernelConfig['confidential'] } : {}), fragments: (opts.fragments ?? []).map((f) => resolve(f)) };
}

/** Refuses options this build would silently ignore (a user who gives one expects it to count). */
function checkUnused(opts: BuildOptions, builds: { rootfs: boolean; image: boolean; initrd: boolean; kernel: boolean; bootTest: boolean }): void {
  const unused = (flag: string, why: string, hint: string) => new OsbuilderError('USAGE', `${flag} was given but ${why}`, hint);
  if (opts.accel !== undefined && !(ACCELS as readonly string[]).includes(opts.accel))
    throw new OsbuilderError('USAGE', `unknown --accel "${opts.accel}" for the boot test`, `use --accel ${ACCELS.join('|')}`);
  for (const [flag, v] of [
    ['--make-jobs', opts.makeJobs],
    ['--confidential', opts.confidential],
    ['--fragment', opts.fragments?.length ? 1 : undefined],
  ] as const) {
    if (v !== undefined && !builds.kernel) throw unused(flag, 'no kernel is built', `add --kernel, or drop ${flag}`);
  }
  if (opts.initrdDistro !== undefined && !builds.initrd) throw unused('--initrd-distro', 'no initrd is built', 'add --initrd, or drop --initrd-distro');
  for (const [table, given, built, role] of [
    [IMAGE_OPTIONS, opts.imageOptions, builds.image, 'image'],
    [INITRD_OPTIONS, opts.initrdOptions, builds.initrd, 'initrd'],
  ] as const) {
    const flag = givenFlags(table, given ?? {})[0];
    if (flag && !built) throw unused(flag, `no ${role} is built`, `add --${role}, or drop ${flag}`);
  }
  if (!builds.rootfs) {
    for (const [flag, v] of [
      ['--extra-pkgs', opts.extraPackages?.length ? 1 : undefined],
      ['--mirror', opts.mirror],
      ['--base-image', opts.baseImage],
      ['--agent', opts.agent],
      ['--os-version', opts.osVersion],
      ['--no-package-cache', opts.noPackageCache ? 1 : undefined],
    ] as const) {
      if (v !== undefined) throw unused(flag, 'no image or initrd is built', `add --image and/or --initrd, or drop ${flag}`);
    }
  }
  if (!builds.bootTest) {
    for (const [flag, v] of [
      ['--accel', opts.accel],
      ['--boot-timeout', opts.bootTimeout],
    ] as const) {
      if (v !== undefined) throw unused(flag, 'the boot test is off (--no-boot-test)', `drop ${flag} or --no-boot-test`);
    }
  }
}

/** The image/initrd options, checked now (by the stages' own validation) so bad ones fail before any work. */
function stageOptions(opts: BuildOptions): Pick<BuildPlan, 'imageOptions' | 'initrdOptions'> {
  const imageOptions = { ...opts.imageOptions };
  const initrdOptions = { ...BUILD_INITRD_DEFAULTS, ...opts.initrdOptions };
  resolveImageOptions({ rootfs: '/', output: '/', ...imageOptions, sourceDateEpoch: null });
  resolveInitrdOptions(initrdOptions);
  return { imageOptions, initrdOptions };
}

/** The numeric and named flags, checked: --jobs, --engine, --kernel-sha256 (only with a kernel), --boot-timeout. */
function checkFlags(opts: BuildOptions, wantKernel: boolean): { jobs: number; engine: BuildPlan['engine'] } {
  const jobs = opts.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1) throw new OsbuilderError('USAGE', `--jobs must be a positive integer, got ${opts.jobs}`, 'e.g. --jobs 2');
  const engine = opts.engine ?? 'docker';
  if (engine !== 'docker' && engine !== 'podman')
    throw new OsbuilderError('USAGE', `unknown engine "${engine}" for osbuilder build`, 'use --engine docker or podman');
  if (opts.kernelSha256 !== undefined && !wantKernel) {
    throw new OsbuilderError(
      'USAGE',
      '--kernel-sha256 was given but no kernel is built, so nothing would check it',
      'add --kernel (or drop --image/--initrd), or drop --kernel-sha256',
    );
  }
  if (opts.bootTimeout !== undefined && !(opts.bootTimeout > 0))
    throw new OsbuilderError('USAGE', `--boot-timeout must be a positive number of seconds, got ${opts.bootTimeout}`, 'e.g. --boot-timeout 300');
  return { jobs, engine };
}

export function planBuild(opts: BuildOptions, local: LocalKernelSource | undefined, hostArch: string, cores = 1): BuildPlan {
  // -g adds the GPU kernel to whatever else is built (by default: everything).
  const any = opts.image || opts.initrd || opts.kernel;
  const wantImage = opts.image ?? !any;
  const wantInitrd = opts.initrd ?? !any;
  const wantKernel = (opts.kernel ?? !any) || !!opts.gpu;
  if (opts.gpu !== undefined && opts.gpu !== 'nvidia') {
    throw new OsbuilderError('UNSUPPORTED', `GPU vendor ${JSON.stringify(opts.gpu)} has no kernel fragments`, 'use -g nvidia');
  }
  if (!wantImage && !wantInitrd && !wantKernel) {
    throw new OsbuilderError('USAGE', 'nothing to build', 'pass --image, --initrd and/or --kernel (none: all three)');
  }
  const { jobs, engine } = checkFlags(opts, wantKernel);
  checkUnused(opts, { rootfs: wantImage || wantInitrd, image: wantImage, initrd: wantInitrd, kernel: wantKernel, bootTest: !opts.noBootTest });

  const rootfs: RootfsJob[] = [];
  if (wantImage) rootfs.push(rootfsJob('image', opts.distro ?? 'debian', opts.osVersion));
  if (wantInitrd) rootfs.push(rootfsJob('initrd', opts.initrdDistro ?? opts.distro ?? 'busybox', opts.initrdDistro ? undefined : opts.osVersion));
  const arch = parseArch(opts.arch ?? hostArch);
  for (const r of rootfs) {
    if (!r.distro.arches.includes(arch)) {
      throw new OsbuilderError(
        'UNSUPPORTED_ARCH',
        `${r.distro.name} does not support ${arch}; supported: ${r.distro.arches.join(', ')}`,
        'choose another --arch or distro (osbuilder distros lists them)',
      );
    }
  }
  const kernels: KernelJob[] = wantKernel ? [{ variant: 'default' }, ...(opts.gpu ? [{ variant: 'nvidia' as const }] : [])] : [];
  const prefix = resolve(opts.prefix ?? '/');
  return {
    arch,
    prefix,
    shareDir: resolve(prefix, 'usr/share/kata-containers'),
    defaultsDir: resolve(prefix, 'usr/share/defaults/kata-containers'),
    rootfs,
    kernels,
    ...(wantKernel ? { kernelSource: chooseKernelSource(opts, local), kernelConfig: kernelConfig(opts) } : {}),
    jobs,
    makeJobs: makeJobs(opts.makeJobs, cores, Math.min(jobs, kernels.length)),
    cache: !opts.noCache,
    bootTest: !opts.noBootTest,
    force: !!opts.force,
    verifyReproducible: !!opts.verifyReproducible,
    engine,
    ...stageOptions(opts),
  };
}

/**
 * Nothing is installed untested unless --no-boot-test: every image/initrd
 * needs a kernel to boot with (built in this run, else the installed one), and
 * a kernel built here needs an image or initrd built with it.
 */
export function checkBootTestable(plan: BuildPlan, installedKernel: boolean): void {
  if (!plan.bootTest) return;
  if (!isGuestArch(plan.arch)) {
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `the boot test cannot boot ${plan.arch} guests (osbuilder boots ${GUEST_ARCHES.join(' and ')})`,
      'pass --no-boot-test to build and install it untested',
    );
  }
  if (plan.rootfs.length > 0 && plan.kernels.length === 0 && !installedKernel) {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `no kernel to boot-test ${plan.rootfs.map((r) => r.fileName).join(' and ')} with: none is built in this run and none is installed at ${join(plan.shareDir, 'vmlinuz.container')}`,
      'build one with it (add --kernel), or pass --no-boot-test to install it untested',
    );
  }
  if (plan.kernels.length > 0 && plan.rootfs.length === 0) {
    throw new OsbuilderError(
      'USAGE',
      'no image or initrd to boot-test the kernel with: none is built in this run',
      'add --image and/or --initrd, or pass --no-boot-test to install the kernel untested',
    );
  }
}
