/**
 * The words every stage shares: root filesystem types, sizes in MiB, and
 * their validators. Nothing else defines them.
 */
import { OsbuilderError } from './errors.js';

/** Kata's root filesystem types (rootfs_type); osbuilder builds the first two. */
export const FS_TYPES = ['ext4', 'erofs', 'xfs'] as const;
export type FsType = (typeof FS_TYPES)[number];
/** The ones `osbuilder image` builds: mkfs.xfs cannot populate an image faithfully without privileges. */
export type BuiltFsType = Exclude<FsType, 'xfs'>;

/**
 * A filesystem type `osbuilder image` builds: an unknown one is refused, and
 * xfs is explained.
 */
export function checkBuiltFsType(fsType: string): BuiltFsType {
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
  return fsType as BuiltFsType;
}

export const MiB = 1024 * 1024;

/** Bytes as MiB with one decimal ("1.5 MiB"); `trimWhole`: a whole number without it ("128 MiB"). */
export function mib(bytes: number, trimWhole = false): string {
  return `${(bytes / MiB).toFixed(trimWhole && bytes % MiB === 0 ? 0 : 1)} MiB`;
}

/** Refuses anything but a whole number of MiB, 0 included. */
export function checkMiB(n: number, flag: string, shown: unknown = n): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new OsbuilderError('USAGE', `${flag} must be a whole number of MiB, got ${shown}`, `e.g. ${flag} 512`);
  return n;
}

/** Parses a whole number of MiB given on the command line or in the environment. */
export function parseMiB(value: unknown, flag: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = String(value).trim();
  return checkMiB(/^\d+$/.test(text) ? Number(text) : Number.NaN, flag, `"${text}"`);
}
