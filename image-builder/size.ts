/**
 * Image size and partition layout, computed (Kata formats and mounts trial
 * images up to 20 times to find it).
 *
 * Layouts (offsets in the image file):
 *  - DAX (default, Kata's current one): [0] MBR #1, [4 KiB] nd_pfn_sb,
 *    [2 MiB] MBR #2, root partition from 3 MiB to 1 MiB before the end.
 *  - no DAX: MBR or GPT, root partition from 1 MiB to 1 MiB before the end.
 *  - with --verity a hash partition follows the root partition and ends 1 MiB
 *    before the end.
 * The image is the smallest multiple of 128 MiB (Kata aligns images to 128 MiB
 * for nvdimm memory) whose root partition holds the filesystem.
 */
import { MiB } from '../core/vocab.js';
import { BLOCK, type RootfsStats } from './scan.js';

export const ALIGN_MIB = 128;
/** Kata's dax_header_sz and dax_alignment. */
export const DAX_HEADER = 2 * MiB;
export const DAX_ALIGN = 2 * MiB;
export const TAIL = 1 * MiB;
/** An MBR addresses 2^32 sectors of 512 bytes: 2 TiB. */
export const MAX_IMAGE_MIB = 2 * 1024 * 1024;

const BLOCKS_PER_GROUP = 32768;
const INODE_SIZE = 256;
const INODE_RATIO = 16384;
const DESC_SIZE = 64;
/** mke2fs -m 3, as Kata (tune2fs -m 3). */
export const RESERVED_PERCENT = 3;
/** First non-reserved inode of ext4. */
const FIRST_INO = 11;

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
const roundUp = (a: number, b: number) => ceilDiv(a, b) * b;

/** ext2fs_default_journal_size() of e2fsprogs 1.47 (blocks). */
export function journalBlocks(blocks: number): number {
  if (blocks < 2048) return 0;
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

function hasSuperblockBackup(group: number): boolean {
  if (group <= 1) return true;
  for (const base of [3, 5, 7]) {
    let g = base;
    while (g < group) g *= base;
    if (g === group) return true;
  }
  return false;
}

export interface Ext4Geometry {
  blocks: number;
  groups: number;
  inodes: number;
  /** Everything mke2fs lays down before any file: superblocks and GDT copies, reserved GDT, bitmaps, inode tables, journal, lost+found. */
  metadataBlocks: number;
}

/** Slack ext2fs_initialize() wants in the last group beyond its metadata, or it drops the group. */
const LAST_GROUP_SLACK = 50;

/**
 * What mke2fs -t ext4 -b 4096 -m 3 -N `inodes` lays out on `bytes` (sparse_super,
 * 64bit, flex_bg, resize_inode). Like ext2fs_initialize(), a last group too
 * small for its own metadata plus 50 blocks is dropped; a filesystem that is
 * only such a group cannot be made (blocks: 0).
 */
export function ext4Geometry(bytes: number, inodesWanted: number): Ext4Geometry {
  let blocks = Math.floor(bytes / BLOCK);
  for (;;) {
    const groups = ceilDiv(blocks, BLOCKS_PER_GROUP);
    const inodesPerBlock = BLOCK / INODE_SIZE;
    const ipg = Math.min(roundUp(ceilDiv(Math.max(inodesWanted, 1), groups), inodesPerBlock), BLOCKS_PER_GROUP);
    const inodes = ipg * groups;
    const gdtBlocks = ceilDiv(groups, BLOCK / DESC_SIZE);
    // calc_reserved_gdt_blocks(): room to grow to 1024x (or 2^32 blocks).
    const maxBlocks = blocks < 0xffffffff / 1024 ? blocks * 1024 : 0xffffffff;
    const reservedGdt = Math.min(ceilDiv(ceilDiv(maxBlocks, BLOCKS_PER_GROUP), BLOCK / DESC_SIZE) - gdtBlocks, BLOCK / 4);
    const superblockCopy = 1 + gdtBlocks + reservedGdt;
    const rem = blocks % BLOCKS_PER_GROUP;
    const lastOverhead = 2 + (ipg * INODE_SIZE) / BLOCK + (hasSuperblockBackup(groups - 1) ? superblockCopy : 0);
    if (rem > 0 && rem < lastOverhead + LAST_GROUP_SLACK) {
      if (groups === 1) return { blocks: 0, groups: 0, inodes: 0, metadataBlocks: 0 };
      blocks -= rem;
      continue;
    }
    let copies = 0;
    for (let g = 0; g < groups; g++) if (hasSuperblockBackup(g)) copies++;
    const metadataBlocks =
      copies * superblockCopy +
      2 * groups +
      (inodes * INODE_SIZE) / BLOCK +
      journalBlocks(blocks) +
      4 /* lost+found */ +
      1 /* resize inode */ +
      32; /* extent and journal index blocks, margin */
    return { blocks, groups, inodes, metadataBlocks };
  }
}

/** Inodes to ask mke2fs for: its default ratio (one per 16 KiB), or more when the rootfs has more files. */
export function ext4Inodes(bytes: number, stats: RootfsStats): number {
  return Math.max(Math.floor(bytes / INODE_RATIO), Math.ceil((stats.inodes + FIRST_INO) * 1.1) + 64);
}

/** Blocks the rootfs's content takes, plus the requested free space. */
export function ext4ContentBlocks(stats: RootfsStats, freeBytes: number): number {
  return stats.dataBlocks + ceilDiv(freeBytes, BLOCK);
}

export interface Ext4Fit {
  fits: boolean;
  geometry: Ext4Geometry;
  neededBlocks: number;
}

/**
 * Can `mke2fs -d` fill a partition of this size, leaving `freeBytes` free? The
 * metadata model is within its 32-block margin of what mke2fs 1.47 lays out,
 * and the scan counts every data block mke2fs allocates (fewer when files hold
 * all-zero blocks). The 3 % reserved blocks count only when free space is
 * asked for, as space unprivileged users cannot use: mke2fs -d itself writes
 * past them (and Kata mounts the root read-only). Should mke2fs still run out
 * of room, the builder says so with a size it proved (build.ts).
 */
export function ext4Fit(partitionBytes: number, stats: RootfsStats, freeBytes: number): Ext4Fit {
  const geometry = ext4Geometry(partitionBytes, ext4Inodes(partitionBytes, stats));
  const reserved = freeBytes > 0 ? Math.floor((geometry.blocks * RESERVED_PERCENT) / 100) : 0;
  const neededBlocks = ext4ContentBlocks(stats, freeBytes) + geometry.metadataBlocks + reserved;
  return { fits: geometry.blocks > 0 && neededBlocks <= geometry.blocks && geometry.inodes >= stats.inodes + FIRST_INO, geometry, neededBlocks };
}

/**
 * dm-verity hash area (format 1, sha256, 4 KiB data and hash blocks, as
 * veritysetup's defaults): one 4 KiB superblock, then the tree levels, 128
 * digests per block, down to a single top block.
 */
export function verityHashBytes(dataBlocks: number): number {
  const perBlock = BLOCK / 32;
  let total = 0;
  let n = dataBlocks;
  do {
    n = ceilDiv(n, perBlock);
    total += n;
  } while (n > 1);
  return (total + 1) * BLOCK;
}

export interface Region {
  start: number;
  size: number;
}

export interface SizeRequest {
  dax: boolean;
  verity: boolean;
  /** Explicit image size; otherwise the smallest multiple of 128 MiB that fits. */
  sizeMiB?: number;
  /** Does a root partition of this many bytes hold the filesystem? */
  fits: (rootBytes: number) => boolean;
  /** Bytes the root partition needs at least (where the search starts). */
  lowerBound?: number;
}

export interface SizePlan {
  totalBytes: number;
  root: Region;
  hash?: Region;
}

/** Partition regions of an image of `totalBytes`. */
export function regionsFor(totalBytes: number, dax: boolean, verity: boolean): SizePlan | undefined {
  const start = dax ? DAX_HEADER + MiB : MiB;
  const room = totalBytes - start - TAIL;
  if (room < MiB) return undefined;
  if (!verity) return { totalBytes, root: { start, size: room } };
  // The tree for the larger area bounds the one for the final root partition.
  const hashSize = roundUp(verityHashBytes(room / BLOCK), MiB);
  const rootSize = room - hashSize;
  if (rootSize < MiB) return undefined;
  return { totalBytes, root: { start, size: rootSize }, hash: { start: start + rootSize, size: hashSize } };
}

/** The image size: explicit (undefined when the rootfs does not fit), or the smallest 128 MiB multiple that fits. */
export function planSize(req: SizeRequest): SizePlan | undefined {
  if (req.sizeMiB !== undefined) {
    const plan = regionsFor(req.sizeMiB * MiB, req.dax, req.verity);
    return plan && req.fits(plan.root.size) ? plan : undefined;
  }
  const first = Math.max(ALIGN_MIB, Math.floor((req.lowerBound ?? 0) / MiB / ALIGN_MIB) * ALIGN_MIB);
  for (let mib = first; mib <= MAX_IMAGE_MIB; mib += ALIGN_MIB) {
    const plan = regionsFor(mib * MiB, req.dax, req.verity);
    if (plan && req.fits(plan.root.size)) return plan;
  }
  return undefined;
}

/**
 * The smallest explicit size in MiB (even with DAX) from `fromMiB` on that
 * fits, for hints. Every size is tried: a bigger partition can need more (a
 * journal from 8 MiB on, a larger one from 128 MiB).
 */
export function smallestSizeMiB(req: Omit<SizeRequest, 'sizeMiB'>, fromMiB = 0): number | undefined {
  const step = req.dax ? 2 : 1;
  const first = Math.max(step, roundUp(fromMiB, step), Math.floor((req.lowerBound ?? 0) / MiB / step) * step);
  for (let mib = first; mib <= MAX_IMAGE_MIB; mib += step) {
    const plan = regionsFor(mib * MiB, req.dax, req.verity);
    if (plan && req.fits(plan.root.size)) return mib;
  }
  return undefined;
}

/** The next size to try after mke2fs ran out of room: 128 MiB more when sizing automatically, else a quarter more (DAX: even). */
export function grownSize(size: SizePlan, dax: boolean, verity: boolean, automatic: boolean): SizePlan | undefined {
  const step = automatic ? ALIGN_MIB : dax ? 2 : 1;
  const mib = size.totalBytes / MiB;
  const next = automatic ? mib + ALIGN_MIB : Math.max(mib + step, roundUp(Math.ceil(mib * 1.25), step));
  return next <= MAX_IMAGE_MIB ? regionsFor(next * MiB, dax, verity) : undefined;
}
