/** Options of `osbuilder image` / buildImage(), validated before any work. */
import { resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { sourceDateEpoch } from '../core/time.js';
import type { PartitionTable } from './layout.js';
import { MAX_IMAGE_MIB } from './size.js';

export const FS_TYPES = ['ext4', 'erofs', 'xfs'] as const;
export type FsType = (typeof FS_TYPES)[number];
export const PARTITION_TABLES = ['mbr', 'gpt'] as const;

export interface BuildImageOptions {
  /** Rootfs directory (made by `osbuilder rootfs`). */
  rootfs: string;
  /** Image file to write (nothing is left there on error). */
  output: string;
  /** Image size in MiB; default: the smallest multiple of 128 MiB that fits. */
  sizeMiB?: number;
  /** Free space to leave in the root filesystem, MiB (Kata's ROOT_FREE_SPACE). Default 0. */
  rootFreeSpaceMiB?: number;
  /** ext4 (default), erofs (read-only); xfs is refused (see options.ts). */
  fsType?: string;
  /** Kata's nvdimm layout with the DAX header (default true). */
  dax?: boolean;
  /** mbr (default) or gpt (the older layout; needs dax: false). */
  partitionTable?: string;
  /** Add a dm-verity hash partition and write root_hash.txt beside the image (Kata's MEASURED_ROOTFS). */
  verity?: boolean;
  /** Names root_hash_<variant>.txt, the kernel_verity_params file (Kata's BUILD_VARIANT; default empty). */
  buildVariant?: string;
  /** Do not require an init and /usr/bin/kata-agent (bare images). */
  skipAgentCheck?: boolean;
  /** Also report the image's sha256 (reads the whole file once more). */
  sha256?: boolean;
  /** Overrides SOURCE_DATE_EPOCH from the environment; null = none (random ids). */
  sourceDateEpoch?: number | null;
}

export interface ResolvedImageOptions {
  rootfs: string;
  output: string;
  sizeMiB?: number;
  rootFreeSpaceMiB: number;
  fsType: 'ext4' | 'erofs';
  dax: boolean;
  partitionTable: PartitionTable;
  verity: boolean;
  buildVariant: string;
  skipAgentCheck: boolean;
  sha256: boolean;
  epoch?: number;
}

/** Parses a whole number of MiB given on the command line or in the environment. */
export function parseMiB(value: unknown, flag: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new OsbuilderError('USAGE', `${flag} must be a whole number of MiB, got "${text}"`, `e.g. ${flag} 512`);
  }
  return n;
}

export function resolveImageOptions(o: BuildImageOptions, env: NodeJS.ProcessEnv = process.env): ResolvedImageOptions {
  const fsType = o.fsType ?? 'ext4';
  if (!(FS_TYPES as readonly string[]).includes(fsType)) {
    throw new OsbuilderError('USAGE', `unknown filesystem type "${fsType}"; valid: ${FS_TYPES.join(', ')}`, 'use --fs-type ext4 (default) or erofs');
  }
  if (fsType === 'xfs') {
    throw new OsbuilderError(
      'UNSUPPORTED',
      'xfs images cannot be built without privileges here: mkfs.xfs (xfsprogs 6.1) populates a filesystem only from a protofile, which cannot carry file timestamps (every file gets the build time), extended attributes or hard links, and it needs at least 300 MB',
      "use --fs-type ext4 or erofs, or Kata's privileged image_builder.sh (loop device + mount) for xfs",
    );
  }
  const table = o.partitionTable ?? 'mbr';
  if (!(PARTITION_TABLES as readonly string[]).includes(table)) {
    throw new OsbuilderError('USAGE', `unknown partition table "${table}"; valid: ${PARTITION_TABLES.join(', ')}`, 'use --partition-table mbr (default) or gpt');
  }
  const dax = o.dax ?? true;
  if (table === 'gpt' && dax) {
    throw new OsbuilderError(
      'UNSUPPORTED',
      'a GPT cannot carry the DAX header: its entry array fills bytes 1024-17407, over the nd_pfn_sb info block at 4 KiB, and the nvdimm view from 2 MiB would need a second backup GPT header at the same last sector',
      'add --no-dax for a GPT disk, or keep the default MBR layout for nvdimm/DAX',
    );
  }
  for (const [v, flag] of [
    [o.sizeMiB, '--size'],
    [o.rootFreeSpaceMiB, '--root-free-space'],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new OsbuilderError('USAGE', `${flag} must be a whole number of MiB, got ${v}`, `e.g. ${flag} 512`);
  }
  const rootFree = o.rootFreeSpaceMiB ?? 0;
  if (fsType === 'erofs' && rootFree > 0) {
    throw new OsbuilderError('USAGE', 'erofs is read-only: --root-free-space does not apply to it', 'drop --root-free-space, or use --fs-type ext4');
  }
  // An odd --size with DAX is refused by the builder, whose hint needs the rootfs (build.ts).
  if (o.sizeMiB !== undefined && o.sizeMiB > MAX_IMAGE_MIB) throw new OsbuilderError('USAGE', `--size ${o.sizeMiB} MiB is above the 2 TiB an MBR-era image can address`, 'choose a smaller --size');
  const buildVariant = o.buildVariant ?? '';
  if (!/^[A-Za-z0-9._-]*$/.test(buildVariant)) {
    throw new OsbuilderError('USAGE', `--build-variant ${JSON.stringify(buildVariant)} is not a file name part: letters, digits, ".", "_" and "-" only`, 'e.g. --build-variant confidential');
  }
  if (o.buildVariant !== undefined && !(o.verity ?? false)) {
    throw new OsbuilderError('USAGE', '--build-variant names the verity parameters file: it needs --verity', 'add --verity, or drop --build-variant');
  }
  const epoch = o.sourceDateEpoch === null ? undefined : (o.sourceDateEpoch ?? sourceDateEpoch(env));
  return {
    rootfs: resolve(o.rootfs),
    output: resolve(o.output),
    ...(o.sizeMiB !== undefined ? { sizeMiB: o.sizeMiB } : {}),
    rootFreeSpaceMiB: rootFree,
    fsType: fsType as 'ext4' | 'erofs',
    dax,
    partitionTable: table as PartitionTable,
    verity: o.verity ?? false,
    buildVariant,
    skipAgentCheck: o.skipAgentCheck ?? false,
    sha256: o.sha256 ?? false,
    ...(epoch !== undefined ? { epoch } : {}),
  };
}

export interface ImageCliArgs {
  rootfs: string;
  output?: string;
  size?: string | number;
  rootFreeSpace?: string | number;
  fsType?: string;
  dax?: boolean;
  partitionTable?: string;
  verity?: boolean;
  buildVariant?: string;
  skipAgentCheck?: boolean;
  sha256?: boolean;
}

/**
 * CLI flags, with Kata's environment variables as defaults: IMAGE (-o),
 * FS_TYPE, ROOT_FREE_SPACE, MEASURED_ROOTFS=yes (--verity), BUILD_VARIANT.
 */
export function imageOptionsFromCli(a: ImageCliArgs, env: NodeJS.ProcessEnv = process.env): BuildImageOptions {
  const output = a.output ?? env.IMAGE;
  if (!output) throw new OsbuilderError('USAGE', 'no output file: give -o <file> (or IMAGE=<file>)', 'e.g. osbuilder image ./rootfs -o kata-containers.img');
  const size = parseMiB(a.size, '--size');
  const free = parseMiB(a.rootFreeSpace ?? env.ROOT_FREE_SPACE, '--root-free-space');
  return {
    rootfs: a.rootfs,
    output,
    ...(size !== undefined ? { sizeMiB: size } : {}),
    ...(free !== undefined ? { rootFreeSpaceMiB: free } : {}),
    fsType: a.fsType ?? (env.FS_TYPE || 'ext4'),
    dax: a.dax ?? true,
    partitionTable: a.partitionTable ?? 'mbr',
    verity: a.verity ?? env.MEASURED_ROOTFS === 'yes',
    ...(a.buildVariant !== undefined ? { buildVariant: a.buildVariant } : env.BUILD_VARIANT && (a.verity ?? env.MEASURED_ROOTFS === 'yes') ? { buildVariant: env.BUILD_VARIANT } : {}),
    skipAgentCheck: a.skipAgentCheck ?? false,
    sha256: a.sha256 ?? false,
  };
}
