/**
 * Makes inode timestamps a function of the rootfs content and SOURCE_DATE_EPOCH.
 *
 * mke2fs -d copies atime, mtime and ctime from the source tree, and reading a
 * file for the copy moves its atime (relatime), so the first build of a fresh
 * rootfs differs from the second; a copied rootfs has new ctimes. With
 * SOURCE_DATE_EPOCH we rewrite, in every in-use inode, mtime := min(mtime,
 * epoch) and atime := ctime := that mtime (crtime is already the epoch via
 * E2FSPROGS_FAKE_TIME), then recompute the inode checksum.
 *
 * On-disk facts (ext4, e2fsprogs lib/ext2fs/ext2_fs.h): superblock at 1024;
 * group descriptors in the block after it; inode layout below; metadata_csum
 * inode checksum = crc32c(crc32c(crc32c(csum_seed, le32 ino), le32
 * generation), whole inode with both checksum fields zeroed), csum_seed =
 * crc32c(~0, s_uuid) unless INCOMPAT_CSUM_SEED stores it.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { internalError } from '../core/errors.js';
import { crc32cRaw } from './crc32c.js';

const SB = {
  inodes_count: 0x00,
  log_block_size: 0x18,
  blocks_per_group: 0x20,
  inodes_per_group: 0x28,
  magic: 0x38,
  first_ino: 0x54,
  inode_size: 0x58,
  feature_incompat: 0x60,
  feature_ro_compat: 0x64,
  uuid: 0x68,
  desc_size: 0xfe,
  checksum_seed: 0x270,
} as const;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_COMPAT_METADATA_CSUM = 0x400;
const BG = { inode_table_lo: 0x08, flags: 0x12, itable_unused_lo: 0x1c, inode_table_hi: 0x28, itable_unused_hi: 0x32 } as const;
const BG_INODE_UNINIT = 0x1;
const INODE = {
  mode: 0x00,
  atime: 0x08,
  ctime: 0x0c,
  mtime: 0x10,
  links_count: 0x1a,
  generation: 0x64,
  checksum_lo: 0x7c,
  extra_isize: 0x80,
  checksum_hi: 0x82,
  ctime_extra: 0x84,
  mtime_extra: 0x88,
  atime_extra: 0x8c,
} as const;

interface Time {
  sec: number;
  nsec: number;
}

/** Seconds are a signed 32-bit field plus two epoch bits in the low bits of *_extra. */
function readTime(ino: Buffer, field: number, extraField: number | undefined): Time {
  const base = ino.readInt32LE(field);
  if (extraField === undefined) return { sec: base, nsec: 0 };
  const extra = ino.readUInt32LE(extraField);
  return { sec: base + (extra & 3) * 2 ** 32, nsec: extra >>> 2 };
}

function writeTime(ino: Buffer, field: number, extraField: number | undefined, t: Time): void {
  const epochBits = Math.floor((t.sec + 2 ** 31) / 2 ** 32);
  ino.writeInt32LE(t.sec - epochBits * 2 ** 32, field);
  if (extraField !== undefined) ino.writeUInt32LE(((t.nsec << 2) | (epochBits & 3)) >>> 0, extraField);
}

export interface TimeFixResult {
  inodesSeen: number;
  inodesChanged: number;
}

interface Geometry {
  blockSize: number;
  inodesPerGroup: number;
  inodeSize: number;
  groups: number;
  is64: boolean;
  descSize: number;
  /** metadata_csum: each changed inode's checksum is recomputed, from this seed. */
  csum: boolean;
  seed: number;
}

async function readGeometry(fh: FileHandle, offset: number, file: string): Promise<Geometry> {
  const sb = Buffer.alloc(1024);
  await fh.read(sb, 0, 1024, offset + 1024);
  if (sb.readUInt16LE(SB.magic) !== 0xef53) throw internalError(`no ext4 superblock at byte ${offset + 1024} of ${file}`);
  const inodesPerGroup = sb.readUInt32LE(SB.inodes_per_group);
  const incompat = sb.readUInt32LE(SB.feature_incompat);
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  return {
    blockSize: 1024 << sb.readUInt32LE(SB.log_block_size),
    inodesPerGroup,
    inodeSize: sb.readUInt16LE(SB.inode_size),
    groups: Math.ceil(sb.readUInt32LE(SB.inodes_count) / inodesPerGroup),
    is64,
    descSize: is64 ? sb.readUInt16LE(SB.desc_size) : 32,
    csum: (sb.readUInt32LE(SB.feature_ro_compat) & RO_COMPAT_METADATA_CSUM) !== 0,
    seed: incompat & INCOMPAT_CSUM_SEED ? sb.readUInt32LE(SB.checksum_seed) : crc32cRaw(0xffffffff, sb.subarray(SB.uuid, SB.uuid + 16)),
  };
}

/** Clamps one inode's mtime to the epoch and sets atime and ctime to it; true when that changed it. */
function fixInode(ino: Buffer, inodeNumber: number, geo: Geometry, epoch: number): boolean {
  const extraIsize = geo.inodeSize > 128 ? ino.readUInt16LE(INODE.extra_isize) : 0;
  const ex = (field: number) => (geo.inodeSize > 128 && field + 4 - 128 <= extraIsize ? field : undefined);
  const before = Buffer.from(ino);
  let m = readTime(ino, INODE.mtime, ex(INODE.mtime_extra));
  if (m.sec > epoch) m = { sec: epoch, nsec: 0 };
  writeTime(ino, INODE.mtime, ex(INODE.mtime_extra), m);
  writeTime(ino, INODE.atime, ex(INODE.atime_extra), m);
  writeTime(ino, INODE.ctime, ex(INODE.ctime_extra), m);
  if (before.equals(ino)) return false;
  if (geo.csum) {
    const hasHi = geo.inodeSize > 128 && extraIsize >= INODE.checksum_hi + 2 - 128;
    ino.writeUInt16LE(0, INODE.checksum_lo);
    if (hasHi) ino.writeUInt16LE(0, INODE.checksum_hi);
    const idBuf = Buffer.alloc(8);
    idBuf.writeUInt32LE(inodeNumber, 0);
    idBuf.writeUInt32LE(ino.readUInt32LE(INODE.generation), 4);
    const c = crc32cRaw(crc32cRaw(geo.seed, idBuf), ino);
    ino.writeUInt16LE(c & 0xffff, INODE.checksum_lo);
    if (hasHi) ino.writeUInt16LE(c >>> 16, INODE.checksum_hi);
  }
  return true;
}

/** Fixes the used inodes of group `g` (its descriptor in `gdt`). */
async function fixGroup(fh: FileHandle, offset: number, gdt: Buffer, g: number, geo: Geometry, epoch: number, result: TimeFixResult): Promise<void> {
  const d = g * geo.descSize;
  if (gdt.readUInt16LE(d + BG.flags) & BG_INODE_UNINIT) return;
  const table = gdt.readUInt32LE(d + BG.inode_table_lo) + (geo.is64 ? gdt.readUInt32LE(d + BG.inode_table_hi) * 2 ** 32 : 0);
  const unused = gdt.readUInt16LE(d + BG.itable_unused_lo) + (geo.is64 ? gdt.readUInt16LE(d + BG.itable_unused_hi) * 65536 : 0);
  const used = geo.inodesPerGroup - unused;
  if (used <= 0) return;
  const buf = Buffer.alloc(used * geo.inodeSize);
  const pos = offset + table * geo.blockSize;
  await fh.read(buf, 0, buf.length, pos);
  let dirty = false;
  for (let i = 0; i < used; i++) {
    const ino = buf.subarray(i * geo.inodeSize, (i + 1) * geo.inodeSize);
    if (ino.readUInt16LE(INODE.mode) === 0 || ino.readUInt16LE(INODE.links_count) === 0) continue;
    result.inodesSeen++;
    if (!fixInode(ino, g * geo.inodesPerGroup + i + 1, geo, epoch)) continue;
    result.inodesChanged++;
    dirty = true;
  }
  if (dirty) await fh.write(buf, 0, buf.length, pos);
}

/** Rewrites the timestamps of the ext4 filesystem starting at byte `offset` of `file`. */
export async function normalizeExt4Times(file: string, offset: number, epoch: number): Promise<TimeFixResult> {
  const fh = await open(file, 'r+');
  try {
    const geo = await readGeometry(fh, offset, file);
    const gdt = Buffer.alloc(geo.groups * geo.descSize);
    await fh.read(gdt, 0, gdt.length, offset + (geo.blockSize === 1024 ? 2048 : geo.blockSize));
    const result: TimeFixResult = { inodesSeen: 0, inodesChanged: 0 };
    for (let g = 0; g < geo.groups; g++) await fixGroup(fh, offset, gdt, g, geo, epoch, result);
    return result;
  } finally {
    await fh.close();
  }
}
