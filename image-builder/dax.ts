/**
 * The NVDIMM "pfn" info block that makes the guest kernel use the image as
 * a DAX-capable namespace: `struct nd_pfn_sb` (Linux drivers/nvdimm/pfn.h),
 * 4096 bytes, read by nd_pfn_validate() (drivers/nvdimm/pfn_devs.c) at
 * byte SZ_4K of the namespace, i.e. byte 4096 of the image file.
 *
 * Field offsets (all little-endian), from pfn.h in linux-source-6.1:
 *     0  u8     signature[16]   PFN_SIG "NVDIMM_PFN_INFO\0"
 *    16  u8     uuid[16]
 *    32  u8     parent_uuid[16] must equal the namespace's; a label-less
 *                               (io) namespace like QEMU's nvdimm has the null uuid
 *    48  __le32 flags
 *    52  __le16 version_major
 *    54  __le16 version_minor
 *    56  __le64 dataoff         where the data starts, from the namespace base
 *    64  __le64 npfns
 *    72  __le32 mode            enum nd_pfn_mode (drivers/nvdimm/nd.h):
 *                               PFN_MODE_NONE 0, PFN_MODE_RAM 1, PFN_MODE_PMEM 2
 *    76  __le32 start_pad       (minor >= 1)
 *    80  __le32 end_trunc       (minor >= 1)
 *    84  __le32 align           (minor >= 2)
 *    88  __le32 page_size       (minor >= 4; zero padding in older layouts)
 *    92  __le16 page_struct_size(minor >= 4)
 *    94  u8     padding[3994]
 *  4088  __le64 checksum
 *
 * Checksum (nd_sb_checksum, drivers/nvdimm/claim.c, over struct nd_gen_sb of
 * SZ_4K bytes): nd_fletcher64 (drivers/nvdimm/core.c) of the whole block with
 * the checksum field zeroed: for each little-endian u32 word w,
 * lo32 = (lo32 + w) mod 2^32; hi32 += lo32 (64-bit); result hi32 << 32 | lo32.
 *
 * Values as Kata's nsdax tool writes them (tools/osbuilder/image-builder/
 * nsdax.gpl.c): signature PFN_SIG, mode PFN_MODE_RAM, dataoff = the 2 MiB
 * header, align = 2 MiB, version_major 0, version_minor 2, every other
 * field (uuids, flags, npfns, start_pad, end_trunc) zero.
 */
import { internalError } from '../core/errors.js';

export const PFN_SB_OFFSET = 4096;
export const PFN_SB_SIZE = 4096;
export const PFN_SIG = 'NVDIMM_PFN_INFO\0';
export const PFN_MODE_NONE = 0;
export const PFN_MODE_RAM = 1;
export const PFN_MODE_PMEM = 2;

export const PFN_SB_FIELDS = {
  signature: 0,
  uuid: 16,
  parent_uuid: 32,
  flags: 48,
  version_major: 52,
  version_minor: 54,
  dataoff: 56,
  npfns: 64,
  mode: 72,
  start_pad: 76,
  end_trunc: 80,
  align: 84,
  page_size: 88,
  page_struct_size: 92,
  padding: 94,
  checksum: 4088,
} as const;

/** nd_fletcher64(addr, len, le=true) from drivers/nvdimm/core.c. */
export function ndFletcher64(buf: Buffer): bigint {
  let lo32 = 0;
  let hi32 = 0n;
  const words = Math.floor(buf.length / 4);
  for (let i = 0; i < words; i++) {
    lo32 = (lo32 + buf.readUInt32LE(i * 4)) >>> 0;
    hi32 += BigInt(lo32);
  }
  return BigInt.asUintN(64, (hi32 << 32n) | BigInt(lo32));
}

/** nd_sb_checksum: fletcher64 of the 4 KiB block with its checksum field zeroed. */
export function ndSbChecksum(block: Buffer): bigint {
  const copy = Buffer.from(block.subarray(0, PFN_SB_SIZE));
  copy.writeBigUInt64LE(0n, PFN_SB_FIELDS.checksum);
  return ndFletcher64(copy);
}

export interface PfnSbSpec {
  /** Bytes from the namespace start to the data (Kata: the 2 MiB header). */
  dataOffset: number;
  /** Mapping alignment in bytes (Kata: 2 MiB, for huge pages). */
  align: number;
  mode?: number;
  versionMajor?: number;
  versionMinor?: number;
  npfns?: bigint;
}

export function buildPfnSb(spec: PfnSbSpec): Buffer {
  const b = Buffer.alloc(PFN_SB_SIZE);
  const f = PFN_SB_FIELDS;
  b.write(PFN_SIG, f.signature, 'latin1');
  b.writeUInt16LE(spec.versionMajor ?? 0, f.version_major);
  b.writeUInt16LE(spec.versionMinor ?? 2, f.version_minor);
  b.writeBigUInt64LE(BigInt(spec.dataOffset), f.dataoff);
  b.writeBigUInt64LE(spec.npfns ?? 0n, f.npfns);
  b.writeUInt32LE(spec.mode ?? PFN_MODE_RAM, f.mode);
  b.writeUInt32LE(spec.align, f.align);
  b.writeBigUInt64LE(ndSbChecksum(b), f.checksum);
  return b;
}

export interface ParsedPfnSb {
  signature: string;
  versionMajor: number;
  versionMinor: number;
  dataOffset: bigint;
  npfns: bigint;
  mode: number;
  startPad: number;
  endTrunc: number;
  align: number;
  checksum: bigint;
  checksumOk: boolean;
  parentUuidNull: boolean;
}

export function parsePfnSb(block: Buffer): ParsedPfnSb {
  if (block.length < PFN_SB_SIZE) throw internalError(`pfn info block is ${block.length} bytes, expected ${PFN_SB_SIZE}`);
  const f = PFN_SB_FIELDS;
  const checksum = block.readBigUInt64LE(f.checksum);
  return {
    signature: block.toString('latin1', f.signature, f.signature + 16),
    versionMajor: block.readUInt16LE(f.version_major),
    versionMinor: block.readUInt16LE(f.version_minor),
    dataOffset: block.readBigUInt64LE(f.dataoff),
    npfns: block.readBigUInt64LE(f.npfns),
    mode: block.readUInt32LE(f.mode),
    startPad: block.readUInt32LE(f.start_pad),
    endTrunc: block.readUInt32LE(f.end_trunc),
    align: block.readUInt32LE(f.align),
    checksum,
    checksumOk: checksum === ndSbChecksum(block),
    parentUuidNull: block.subarray(f.parent_uuid, f.parent_uuid + 16).every((x) => x === 0),
  };
}

/**
 * The checks nd_pfn_validate() makes that depend on the block alone and the
 * namespace size; returns the reasons the kernel would refuse it (empty = ok).
 */
export function pfnSbProblems(block: Buffer, namespaceBytes: number): string[] {
  const p = parsePfnSb(block);
  const problems: string[] = [];
  if (p.signature !== PFN_SIG) problems.push(`signature is ${JSON.stringify(p.signature)}, expected ${JSON.stringify(PFN_SIG)}`);
  if (!p.checksumOk) problems.push(`checksum 0x${p.checksum.toString(16)} does not match nd_sb_checksum 0x${ndSbChecksum(block).toString(16)}`);
  if (!p.parentUuidNull) problems.push('parent_uuid is not the null uuid of a label-less namespace');
  if (p.mode !== PFN_MODE_RAM && p.mode !== PFN_MODE_PMEM) problems.push(`mode ${p.mode} is neither PFN_MODE_RAM nor PFN_MODE_PMEM`);
  const align = p.versionMinor >= 2 ? p.align : 0;
  if (align > namespaceBytes) problems.push(`align ${align} exceeds the namespace size ${namespaceBytes}`);
  if (p.dataOffset >= BigInt(namespaceBytes)) problems.push(`dataoff ${p.dataOffset} is past the namespace end`);
  if (p.dataOffset % 4096n !== 0n || (align && p.dataOffset % BigInt(align) !== 0n))
    problems.push(`dataoff ${p.dataOffset} is not aligned to the page size and to align ${align}`);
  return problems;
}
