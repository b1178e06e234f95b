/**
 * The contract between a distro folder and the rootfs builder. A definition is
 * data plus pure functions: given a version, arch, init mode, package set and
 * mirror it returns argv arrays to run inside the builder container (or on the
 * host with --engine native) and file operations for the host side.
 */

import type { Arch } from '../core/arch.js';

export type InitMode = 'systemd' | 'agent-init';

export interface DistroVersion {
  /** What --os-version takes and what metadata records, e.g. "bookworm". */
  id: string;
  /** Other accepted spellings, e.g. "12". */
  aliases?: string[];
  /** Human label, e.g. "Debian 12". */
  label?: string;
}

/** A command run inside the builder container (or on the host with --engine native). */
export interface Command {
  title: string;
  argv: string[];
  /** Fed to the command's stdin. */
  input?: string;
  /** Keep stdout under this key (for postBootstrap / package lists). */
  capture?: string;
  /**
   * Runs in the builder but does not touch the rootfs (e.g. querying the
   * builder's own packages); with --engine native it runs on the host.
   */
  builderOnly?: boolean;
}

/** Named pure text transforms the builder applies to files in the rootfs. */
export type TransformName = 'chrony-conf' | 'chrony-service';

/**
 * Host-side file operations on the rootfs, applied through core/fs-safe.
 * `when`: apply only if that in-root path exists; `unless`: only if it does not.
 */
export type FileOp = (
  | { op: 'mkdir'; path: string; mode?: number }
  | { op: 'write'; path: string; content: string; mode?: number }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'remove'; path: string; recursive?: boolean }
  /** Remove every non-directory under `path`, keeping the directories (logs, caches). */
  | { op: 'remove-files-under'; path: string }
  /** Copy the first existing in-root file of `from` to `path`, else write `fallback`. */
  | { op: 'copy-within'; path: string; from: string[]; fallback?: string; mode?: number }
  /** Remove unit files and enablement links named <unit>.service|.socket, and entries named exactly as `files`. */
  | { op: 'trim-units'; units: string[]; files: string[] }
  | { op: 'transform'; paths: string[]; transform: TransformName }
) & { when?: string; unless?: string };

export type PackageSource =
  /** /var/lib/dpkg/status inside the rootfs, parsed on the host. */
  | { kind: 'dpkg-status'; path: string }
  /** apk's installed database inside the rootfs, parsed on the host. */
  | { kind: 'apk-installed'; path: string }
  /** Clear Linux bundle markers inside the rootfs (bundle=os-version). */
  | { kind: 'clear-bundles'; path: string; osRelease: string }
  /** A command printing name=version lines (rpm -qa …). */
  | { kind: 'command'; command: Command };

export interface BootstrapInput {
  version: string;
  arch: Arch;
  initMode: InitMode;
  /** Full package set: the distro's for the init mode, then extras. */
  packages: string[];
  mirror: string;
  /** Path of the rootfs as the commands see it (/rootfs in a container). */
  root: string;
  /** The arch the bootstrap commands run on (the host's when the distro needs no emulation). */
  builderArch: Arch;
}

export interface DistroDefinition {
  name: string;
  displayName: string;
  description: string;
  versions: DistroVersion[];
  defaultVersion: string;
  /** Versions accepted beyond the list (e.g. Clear Linux build numbers). */
  versionPattern?: RegExp;
  arches: readonly Arch[];
  /** Supported init modes; the first is the default. */
  initModes: readonly InitMode[];
  /** The tool that populates the rootfs. */
  bootstrapTool: string;
  /** Package manager left in the guest, if any. */
  packageManager: string | null;
  /** Package set per init mode (Kata's config.sh PACKAGES, split by AGENT_INIT). */
  packages: { common: string[]; systemd: string[]; agentInit: string[] };
  extraPackages: boolean;
  defaultMirror(arch: Arch): string;
  /** Registry reference of the builder's base image (Kata's Dockerfile.in FROM). */
  baseImage(version: string, arch: Arch): string;
  /** Debian suite when --bootstrap-base can make the base image locally with mmdebstrap. */
  localBase?(version: string): { suite: string; mirror: string };
  /** Packages installed in the builder image. */
  builderPackages: string[];
  /** Dockerfile.hbs beside the definition. */
  dockerfileTemplate: URL;
  /** Extra variables for the Dockerfile template. */
  dockerfileVars?(version: string, arch: Arch): Record<string, string>;
  /** Host tools --engine native needs. */
  nativeTools: string[];
  /** Other arches are built by a host-arch builder (no qemu-user): it fetches the target's binaries. */
  crossWithoutEmulation?: boolean;
  bootstrap(input: BootstrapInput): Command[];
  /** Host-side operations right after bootstrap (layout the tool does not make). */
  postBootstrap?(input: BootstrapInput, captured: Record<string, string>): FileOp[];
  packageSource(input: BootstrapInput): PackageSource;
  /** chrony.conf and its unit, where this distro puts them. */
  chrony?: { conf: string[]; service: string[] };
  /** Patterns in the bootstrap tool's output naming a package that does not exist (group 1 = name). */
  unknownPackagePatterns: RegExp[];
  /** /etc/os-release the guest should have when the distro does not ship one. */
  osRelease?(version: string, captured: Record<string, string>): string;
  /**
   * The bootstrap can reuse downloaded packages from a host-side cache
   * (rootfs-builder/package-cache.ts). Unset: no package cache for this distro.
   */
  packageCache?(input: BootstrapInput): PackageCacheSupport;
}

/** How a distro's bootstrap uses the package cache: plain data. */
export interface PackageCacheSupport {
  /** What keys the cache besides the mirror and the arch (an apt suite). */
  suite: string;
  /** argv[0] of the bootstrap command that takes `args`. */
  tool: string;
  /** Inserted after argv[0]; they read the cache directory from $OSBUILDER_PACKAGE_CACHE. */
  args: string[];
}
