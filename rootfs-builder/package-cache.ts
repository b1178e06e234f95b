/**
 * The shared package cache: downloaded .debs kept on the host under
 * <cache>/packages/<key>/, key = hash of mirror + suite + arch, and handed to
 * the bootstrap of every build of that archive (distros that declare
 * `packageCache`: Debian and Ubuntu, both mmdebstrap). Each build gets a
 * private copy that apt verifies against the signed index before use; what
 * apt verified is published back by rename, so concurrent builds need no lock.
 * The cache changes no output: it is not part of any rootfs cache key.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson, type BuildCache } from '../core/cache.js';
import type { BindMount, VolumeMount } from '../core/docker.js';
import { sha256 } from '../core/hash.js';
import { ownerTag } from '../core/owner.js';
import { PACKAGE_CACHE_ENV, PACKAGE_CACHE_OWNER_ENV } from '../distros/index.js';
import { ARCH_FACTS } from '../core/arch.js';
import type { BootstrapInput, Command, DistroDefinition } from '../distros/index.js';

/** Top-level directory of the build cache holding the package caches. */
export const PACKAGE_CACHE_TOP = 'packages';
/** Where the builder container sees its package cache. */
export const PACKAGE_CACHE_MOUNT = '/var/cache/osbuilder/packages';

export interface PackageCacheSource {
  mirror: string;
  suite: string;
  /** dpkg's name (amd64, arm64, …). */
  arch: string;
}

export interface PackageCachePlan {
  key: string;
  source: PackageCacheSource;
  /** The directory on the host; for a remote engine, the volume's name on its side. */
  hostDir: string;
  /** The same directory as the bootstrap command sees it. */
  dir: string;
  /** A local engine: the bind mount making `hostDir` visible at `dir`. */
  mounts: BindMount[];
  /** A remote engine (no shared path): the cache is this named volume on its side. */
  volumes: VolumeMount[];
  /** argv[0] of the command that takes `args`. */
  tool: string;
  args: string[];
}

/** The cache directory's name: one per archive (mirror, suite, arch), whatever the package set. */
export function packageCacheKey(source: PackageCacheSource): string {
  return sha256(canonicalJson({ ...source, mirror: source.mirror.replace(/\/+$/, '') })).slice(0, 32);
}

/** Where the bootstrap runs: on this machine, in a local engine's container, or on a remote engine. */
export type PackageCacheSite = 'native' | 'local' | 'remote';

/** A remote engine's package-cache volume (one per archive, like the host directories). */
export function packageCacheVolume(key: string): string {
  return `osbuilder-packages-${key}`;
}

/** The package cache of a build, or undefined when the distro has none or it is off (`cacheRoot` unset). */
export function planPackageCache(
  d: DistroDefinition,
  input: BootstrapInput,
  cacheRoot: string | undefined,
  site: PackageCacheSite,
): PackageCachePlan | undefined {
  if (!cacheRoot || !d.packageCache) return undefined;
  const support = d.packageCache(input);
  const source: PackageCacheSource = { mirror: input.mirror, suite: support.suite, arch: ARCH_FACTS[input.arch].debArch };
  const key = packageCacheKey(source);
  const common = { key, source, tool: support.tool, args: support.args };
  if (site === 'remote')
    return {
      ...common,
      hostDir: packageCacheVolume(key),
      dir: PACKAGE_CACHE_MOUNT,
      mounts: [],
      volumes: [{ volume: packageCacheVolume(key), container: PACKAGE_CACHE_MOUNT }],
    };
  const hostDir = join(cacheRoot, PACKAGE_CACHE_TOP, key);
  if (site === 'native') return { ...common, hostDir, dir: hostDir, mounts: [], volumes: [] };
  return { ...common, hostDir, dir: PACKAGE_CACHE_MOUNT, mounts: [{ host: hostDir, container: PACKAGE_CACHE_MOUNT }], volumes: [] };
}

/** Does `cmd` get the package cache? */
export function usesPackageCache(cmd: Command, pc: PackageCachePlan | undefined): pc is PackageCachePlan {
  return pc !== undefined && !cmd.builderOnly && cmd.argv[0] === pc.tool;
}

/** The command with the package cache's arguments after argv[0]. */
export function withPackageCache(cmd: Command, pc: PackageCachePlan | undefined): Command {
  if (!usesPackageCache(cmd, pc)) return cmd;
  return { ...cmd, argv: [cmd.argv[0]!, ...pc.args, ...cmd.argv.slice(1)] };
}

/** What the hooks read: the directory, and the owner tag naming their temp files. */
export function packageCacheEnv(pc: PackageCachePlan, owner: string = ownerTag()): Record<string, string> {
  return { [PACKAGE_CACHE_ENV]: pc.dir, [PACKAGE_CACHE_OWNER_ENV]: owner };
}

/** name → size:mtime:inode of the cached .debs. */
export type PackageSnapshot = Map<string, string>;

/** The `find` listing a remote cache volume in the form of a snapshot (run in the builder image). */
export function listPackagesArgv(dir: string): string[] {
  return ['find', dir, '-maxdepth', '1', '-type', 'f', '-name', '*.deb', '!', '-name', '.*', '-printf', '%f %s:%T@:%i\\n'];
}

/** Reads `listPackagesArgv`'s output. */
export function parsePackageListing(out: string): PackageSnapshot {
  const snap: PackageSnapshot = new Map();
  for (const line of out.split('\n').sort()) {
    const sp = line.indexOf(' ');
    if (sp > 0) snap.set(line.slice(0, sp), line.slice(sp + 1));
  }
  return snap;
}

export async function snapshotPackages(dir: string): Promise<PackageSnapshot> {
  const out: PackageSnapshot = new Map();
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (!name.endsWith('.deb') || name.startsWith('.')) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) out.set(name, `${st.size}:${st.mtimeMs}:${st.ino}`);
  }
  return out;
}

export interface PackageCacheReport {
  dir: string;
  key: string;
  /** .debs in the cache before the build. */
  before: number;
  /** .debs the build added to it or replaced (new downloads, repaired files). */
  stored: number;
  after: number;
}

/** Compares the cache before and after a build: what it stored. */
export function packageCacheReport(pc: PackageCachePlan, before: PackageSnapshot, after: PackageSnapshot): PackageCacheReport {
  let stored = 0;
  for (const [name, st] of after) if (before.get(name) !== st) stored++;
  return { dir: pc.hostDir, key: pc.key, before: before.size, stored, after: after.size };
}

/** Makes the host's cache directory (held by this build: prune leaves it alone); a remote engine's volume needs nothing. */
export async function openPackageCache(cache: BuildCache, pc: PackageCachePlan): Promise<void> {
  if (pc.volumes.length === 0) await cache.openStore(PACKAGE_CACHE_TOP, pc.key, { kind: 'apt archives', ...pc.source });
}
