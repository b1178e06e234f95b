/**
 * Rootfs build options: the mapping from CLI flags and Kata's rootfs.sh
 * environment variables, and their validation against a distro. Both pure.
 */
import { basename, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { hostArch, parseArch, type Arch } from '../core/arch.js';
import { readOptions, splitList, type OptionSpec, type OptionValues } from '../core/options.js';
import { DISTROS, getDistro, resolveVersion } from '../distros/index.js';
import type { DistroDefinition, InitMode } from '../distros/index.js';

export type Engine = 'docker' | 'podman' | 'native';
export const ENGINES: readonly Engine[] = ['docker', 'podman', 'native'];

/** Kata tests USE_DOCKER/USE_PODMAN with -n; we also read the usual false spellings as unset. */
function envFlag(v: string | undefined): boolean {
  return set(v) && !/^(0|no|false|off)$/i.test(v);
}

function set(v: string | undefined): v is string {
  return v !== undefined && v !== '';
}

function parseAgentInit(v: string | undefined): boolean | undefined {
  if (!set(v)) return undefined;
  if (v === 'yes') return true;
  if (v === 'no') return false;
  throw new OsbuilderError('USAGE', `AGENT_INIT(${v}) is invalid (must be yes or no)`, 'unset it, or use --agent-init');
}

/** The rootfs stage's options (the distro and -o are the command's own), with Kata's rootfs.sh variables. */
export const ROOTFS_OPTIONS = [
  {
    key: 'osVersion',
    flag: 'os-version',
    kind: 'string',
    env: 'OS_VERSION',
    output: true,
    describe: "Distro version, e.g. bookworm or 12 (default: the distro's default)",
  },
  {
    key: 'arch',
    flag: 'arch',
    alias: 'a',
    kind: 'string',
    env: 'ARCH',
    output: true,
    describe: 'Target architecture (x86_64, aarch64, ppc64le, s390x; default: the host)',
  },
  {
    key: 'engine',
    flag: 'engine',
    kind: 'string',
    choices: ENGINES,
    default: 'docker',
    env: 'USE_DOCKER / USE_PODMAN',
    output: true,
    readEnv: (env) => (envFlag(env.USE_DOCKER) ? 'docker' : envFlag(env.USE_PODMAN) ? 'podman' : undefined),
    describe: 'Where to bootstrap the rootfs (osbuilder build: docker or podman)',
  },
  { key: 'agent', flag: 'agent', kind: 'string', env: 'AGENT_SOURCE_BIN', output: true, describe: "Agent binary to install (default: osbuilder's own agent)" },
  {
    key: 'agentInit',
    flag: 'agent-init',
    kind: 'boolean',
    env: 'AGENT_INIT=yes|no',
    output: true,
    readEnv: (env) => parseAgentInit(env.AGENT_INIT),
    describe: "Make the agent /sbin/init and /init instead of using systemd (default: the distro's)",
    notInBuild: 'osbuilder build boots the image with systemd where the distro has it and makes the initrd with the agent as init',
  },
  {
    key: 'extraPackages',
    flag: 'extra-pkgs',
    kind: 'list',
    env: 'EXTRA_PKGS',
    output: true,
    describe: 'Extra packages for distros with a package manager, space separated',
  },
  {
    key: 'kernelModules',
    flag: 'kernel-modules',
    kind: 'string',
    env: 'KERNEL_MODULES_DIR',
    output: true,
    describe: 'Modules directory of one kernel, copied to /lib/modules/<release>',
    notInBuild: "osbuilder build's kernels have their drivers built in",
  },
  { key: 'mirror', flag: 'mirror', kind: 'string', output: true, describe: 'Package archive URL for the guest and the builder' },
  {
    key: 'baseImage',
    flag: 'base-image',
    kind: 'string',
    output: true,
    describe: 'Local image to base the builder on (default: made locally for Debian-based distros, else pulled from the registry)',
  },
  {
    key: 'bootstrapBase',
    flag: 'bootstrap-base',
    kind: 'boolean',
    output: true,
    describe:
      'Make the Debian base image locally (mmdebstrap | docker import), reused when present: the default for Debian-based distros; --no-bootstrap-base pulls it',
    notInBuild: 'osbuilder build pulls nothing from a registry: --base-image gives another base',
  },
  {
    key: 'packageCache',
    flag: 'package-cache',
    kind: 'boolean',
    default: true,
    output: false,
    describe:
      'Reuse downloaded .debs across builds (Debian, Ubuntu: <cache>/packages/<mirror+suite+arch>, on a remote engine its volume osbuilder-packages-<key>; verified by apt; changes no output; off: every package is downloaded)',
  },
] as const satisfies readonly OptionSpec[];

export type RootfsOptionValues = OptionValues<typeof ROOTFS_OPTIONS>;

/** buildRootfs()'s options: the distro, the rootfs directory, and ROOTFS_OPTIONS. */
export interface RootfsOptions extends RootfsOptionValues {
  distro: string;
  /** The rootfs directory to produce. */
  output: string;
  engine?: Engine;
  debug?: boolean;
}

/** What `osbuilder rootfs` parsed (flags win over the environment), by flag name or its camelCase. */
export interface RootfsCliArgs {
  distro: string;
  output?: string;
  debug?: boolean;
  [flag: string]: unknown;
}

type Env = Record<string, string | undefined>;

export const splitPackages = splitList;

/**
 * Flags first, then Kata's environment variables: AGENT_INIT,
 * AGENT_SOURCE_BIN, EXTRA_PKGS, KERNEL_MODULES_DIR, ROOTFS_DIR, USE_DOCKER,
 * USE_PODMAN, OS_VERSION, ARCH, DEBUG. With neither flag nor variable the
 * engine is docker (rootfs.sh builds on the host instead; --engine native).
 */
export function rootfsOptionsFromCli(args: RootfsCliArgs, env: Env = process.env): RootfsOptions {
  const output = args.output ?? (set(env.ROOTFS_DIR) ? env.ROOTFS_DIR : undefined);
  if (!output) throw new OsbuilderError('USAGE', 'no output directory', 'give -o <dir> (or set ROOTFS_DIR)');
  const { engine = 'docker', extraPackages, packageCache, ...given } = readOptions(ROOTFS_OPTIONS, args, env);
  if (!(ENGINES as readonly string[]).includes(engine)) {
    throw new OsbuilderError('USAGE', `unknown engine "${engine}"`, `use one of ${ENGINES.join(', ')}`);
  }
  return {
    distro: args.distro,
    output,
    engine: engine as Engine,
    ...given,
    ...(extraPackages?.length ? { extraPackages } : {}),
    ...(packageCache === false ? { packageCache } : {}),
    ...(args.debug || set(env.DEBUG) ? { debug: true } : {}),
  };
}

export type BaseImageChoice =
  | { kind: 'registry'; ref: string }
  | { kind: 'given'; ref: string }
  | { kind: 'bootstrap'; ref: string; suite: string; arch: Arch; mirror: string; include: string[] };

export interface ResolvedRootfsOptions {
  distro: DistroDefinition;
  version: string;
  arch: Arch;
  hostArch: Arch;
  /** Where the bootstrap runs: the target arch (emulated when foreign), or the host's (crossWithoutEmulation). */
  builderArch: Arch;
  initMode: InitMode;
  engine: Engine;
  output: string;
  agent?: string;
  extraPackages: string[];
  /** Full package set for the bootstrap: distro's (common + mode) then extras. */
  packages: string[];
  defaultPackages: string[];
  kernelModules?: { dir: string; kver: string };
  mirror: string;
  mirrorGiven: boolean;
  base?: BaseImageChoice;
  /** Reuse downloaded packages (when the distro can). */
  packageCache: boolean;
  debug: boolean;
}

/** Package names as apt, apk, dnf and swupd accept them; never an option. */
const PACKAGE_RE = /^[A-Za-z0-9][A-Za-z0-9+._:@~=/-]*$/;
const MIRROR_RE = /^(https?|ftp|file):\/\/[^\s'"\\`$]+$/;
const IMAGE_RE = /^[a-z0-9][a-z0-9._/:@-]*$/i;
/** Kernel release strings start with a version number (uname -r). */
const KVER_RE = /^\d+\.\d+[\w.+~-]*$/;

/**
 * Packages every Debian-based builder installs, put in the locally made base
 * so those builders need no download of their own (their Dockerfiles install
 * only what is missing).
 */
export function localBaseTools(): string[] {
  return [...new Set(DISTROS.filter((d) => d.localBase).flatMap((d) => d.builderPackages))].sort();
}

/** Tag of a Debian base image made locally with --bootstrap-base. */
export function localBaseTag(suite: string, arch: Arch): string {
  return `osbuilder/debian-base:${suite}-${arch}`;
}

/**
 * The builder's base image, one rule for `osbuilder rootfs` and `osbuilder
 * build`: --base-image as given; else made locally (mmdebstrap | import) for
 * Debian-based distros, so no registry is needed (--no-bootstrap-base pulls
 * instead); else the distro's registry image. None for --engine native.
 */
export function chooseBase(
  opts: Pick<RootfsOptions, 'baseImage' | 'bootstrapBase'>,
  engine: Engine,
  distro: DistroDefinition,
  version: string,
  builderArch: Arch,
  mirror: string | undefined,
): BaseImageChoice | undefined {
  if (opts.baseImage !== undefined && opts.bootstrapBase) {
    throw new OsbuilderError(
      'USAGE',
      '--base-image and --bootstrap-base exclude each other',
      'give a local image with --base-image, or let --bootstrap-base make one',
    );
  }
  if (engine === 'native') {
    if (opts.baseImage !== undefined || opts.bootstrapBase) {
      throw new OsbuilderError('USAGE', '--base-image/--bootstrap-base need a container engine', 'drop them, or use --engine docker|podman');
    }
    return undefined;
  }
  if (opts.baseImage !== undefined) {
    if (!IMAGE_RE.test(opts.baseImage))
      throw new OsbuilderError(
        'INPUT_INVALID',
        `--base-image ${JSON.stringify(opts.baseImage)} is not an image reference`,
        'e.g. --base-image debian:bookworm',
      );
    return { kind: 'given', ref: opts.baseImage };
  }
  if (opts.bootstrapBase && !distro.localBase) {
    throw new OsbuilderError(
      'UNSUPPORTED',
      `--bootstrap-base can only make Debian-based builders; ${distro.name} needs its own base image`,
      `pull or import one and pass --base-image (default ${distro.baseImage(version, builderArch)})`,
    );
  }
  if (distro.localBase && opts.bootstrapBase !== false) {
    const lb = distro.localBase(version);
    return {
      kind: 'bootstrap',
      ref: localBaseTag(lb.suite, builderArch),
      suite: lb.suite,
      arch: builderArch,
      mirror: mirror ?? lb.mirror,
      include: localBaseTools(),
    };
  }
  return { kind: 'registry', ref: distro.baseImage(version, builderArch) };
}

/** Validates options against the distro; throws the error the CLI prints. */
export function resolveRootfsOptions(opts: RootfsOptions, host: Arch = hostArch()): ResolvedRootfsOptions {
  const distro = getDistro(opts.distro);
  const version = checkedVersion(distro, opts.osVersion);
  const arch = checkedArch(distro, opts.arch, host);
  const initMode = checkedInitMode(distro, opts.agentInit);
  const engine = opts.engine ?? 'docker';
  if (!ENGINES.includes(engine)) throw new OsbuilderError('USAGE', `unknown engine "${engine}"`, `use one of ${ENGINES.join(', ')}`);

  const extraPackages = checkedExtraPackages(distro, opts.extraPackages ?? []);
  const defaultPackages = [...distro.packages.common, ...(initMode === 'systemd' ? distro.packages.systemd : distro.packages.agentInit)].sort();
  const packages = [...defaultPackages, ...extraPackages.filter((p) => !defaultPackages.includes(p))];
  const mirror = opts.mirror === undefined ? distro.defaultMirror(arch) : checkedMirror(opts.mirror);
  const mirrorGiven = opts.mirror !== undefined;

  const builderArch = distro.crossWithoutEmulation ? host : arch;
  if (engine === 'native' && arch !== host && distro.crossWithoutEmulation) {
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `${distro.name} for ${arch} on this ${host} host needs a container engine (its builder fetches the ${arch} binaries)`,
      'use --engine docker or podman',
    );
  }
  const base = chooseBase(opts, engine, distro, version, builderArch, mirrorGiven ? mirror : undefined);

  const r: ResolvedRootfsOptions = {
    distro,
    version,
    arch,
    hostArch: host,
    builderArch,
    initMode,
    engine,
    output: resolve(opts.output),
    extraPackages,
    packages,
    defaultPackages,
    mirror,
    mirrorGiven,
    packageCache: opts.packageCache ?? true,
    debug: opts.debug ?? false,
  };
  if (opts.agent !== undefined) r.agent = resolve(opts.agent);
  if (opts.kernelModules !== undefined) {
    const dir = resolve(opts.kernelModules);
    r.kernelModules = { dir, kver: basename(dir) };
  }
  if (base) r.base = base;
  return r;
}

function checkedVersion(distro: DistroDefinition, osVersion: string | undefined): string {
  const version = resolveVersion(distro, osVersion);
  if (version !== undefined) return version;
  const list = distro.versions.map((v) => (v.aliases?.length ? `${v.id} (${v.aliases.join(', ')})` : v.id)).join(', ');
  throw new OsbuilderError(
    'INPUT_INVALID',
    `${distro.name} has no version "${osVersion}"; versions: ${list}`,
    `pick one with --os-version (or OS_VERSION); default ${distro.defaultVersion}`,
  );
}

function checkedArch(distro: DistroDefinition, given: string | undefined, host: Arch): Arch {
  const arch = given === undefined ? host : parseArch(given);
  if (distro.arches.includes(arch)) return arch;
  throw new OsbuilderError(
    'UNSUPPORTED_ARCH',
    `${distro.name} does not support ${arch}; supported: ${distro.arches.join(', ')}`,
    'choose another --arch or another distro (osbuilder distros lists them)',
  );
}

/** The distro's first init mode unless --agent-init/AGENT_INIT chose one it supports. */
function checkedInitMode(distro: DistroDefinition, agentInit: boolean | undefined): InitMode {
  let initMode: InitMode;
  if (agentInit === undefined) initMode = distro.initModes[0]!;
  else initMode = agentInit ? 'agent-init' : 'systemd';
  if (distro.initModes.includes(initMode)) return initMode;
  throw new OsbuilderError(
    'UNSUPPORTED',
    initMode === 'systemd' ? `${distro.name} has no systemd: its agent always runs as init` : `${distro.name} cannot run the agent as init`,
    initMode === 'systemd' ? 'drop AGENT_INIT=no, or pick a distro with systemd (osbuilder distros)' : 'drop --agent-init',
  );
}

function checkedExtraPackages(distro: DistroDefinition, given: readonly string[]): string[] {
  const extraPackages = [...given];
  if (extraPackages.length > 0 && !distro.extraPackages) {
    throw new OsbuilderError(
      'UNSUPPORTED',
      `${distro.name} has no package manager, so --extra-pkgs cannot be installed`,
      'pick a distro with packages (e.g. debian)',
    );
  }
  for (const p of extraPackages) {
    if (!PACKAGE_RE.test(p))
      throw new OsbuilderError('INPUT_INVALID', `"${p}" is not a package name`, 'give names separated by spaces, e.g. --extra-pkgs "strace iproute2"');
  }
  return extraPackages;
}

/** A mirror URL, without trailing slashes. */
function checkedMirror(mirror: string): string {
  if (!MIRROR_RE.test(mirror))
    throw new OsbuilderError('INPUT_INVALID', `--mirror ${JSON.stringify(mirror)} is not a URL`, 'e.g. --mirror http://deb.debian.org/debian');
  return mirror.replace(/\/+$/, '');
}

export function isKernelRelease(name: string): boolean {
  return KVER_RE.test(name);
}
