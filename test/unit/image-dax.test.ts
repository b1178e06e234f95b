/**
 * The DAX info block against the kernel's definitions: field offsets computed
 * with C layout rules from struct nd_pfn_sb as declared in linux-6.1
 * drivers/nvdimm/pfn.h (copied below), the checksum recomputed in closed form
 * from nd_fletcher64's definition, and the values Kata's nsdax writes.
 * (test/integration/image-dax-kernel.test.ts compiles the real header.)
 */
import { describe, expect, it } from 'vitest';
import { buildPfnSb, ndFletcher64, parsePfnSb, pfnSbProblems, PFN_SB_FIELDS, PFN_SB_SIZE } from '../../image-builder/dax.js';
import { MiB } from '../../core/vocab.js';

const PFN_H_STRUCT = `
	u8 signature[PFN_SIG_LEN];
	u8 uuid[16];
	u8 parent_uuid[16];
	__le32 flags;
	__le16 version_major;
	__le16 version_minor;
	__le64 dataoff;
	__le64 npfns;
	__le32 mode;
	__le32 start_pad;
	__le32 end_trunc;
	__le32 align;
	__le32 page_size;
	__le16 page_struct_size;
	u8 padding[3994];
	__le64 checksum;
`;

/** offsetof() for each member: natural alignment of u8/__le16/__le32/__le64, arrays aligned like their element. */
function cLayout(decl: string): { offsets: Record<string, number>; size: number } {
  const sizes: Record<string, number> = { u8: 1, __le16: 2, __le32: 4, __le64: 8 };
  const offsets: Record<string, number> = {};
  let off = 0;
  let maxAlign = 1;
  for (const m of decl.matchAll(/(\w+)\s+(\w+)(?:\[(\w+)\])?;/g)) {
    const [, type, name, count] = m;
    const el = sizes[type!]!;
    const n = count === undefined ? 1 : count === 'PFN_SIG_LEN' ? 16 : Number(count);
    off = Math.ceil(off / el) * el;
    offsets[name!] = off;
    off += el * n;
    maxAlign = Math.max(maxAlign, el);
  }
  return { offsets, size: Math.ceil(off / maxAlign) * maxAlign };
}

describe('struct nd_pfn_sb', () => {
  it('has the field offsets and 4096-byte size the kernel declares', () => {
    const { offsets, size } = cLayout(PFN_H_STRUCT);
    expect(size).toBe(PFN_SB_SIZE);
    expect(PFN_SB_FIELDS).toEqual(offsets);
  });

  it("carries what Kata's nsdax writes: PFN_SIG, PFN_MODE_RAM, dataoff = align = 2 MiB, version 0.2, the rest zero", () => {
    const b = buildPfnSb({ dataOffset: 2 * MiB, align: 2 * MiB });
    expect(b.length).toBe(4096);
    expect(b.subarray(0, 16).toString('latin1')).toBe('NVDIMM_PFN_INFO\0');
    expect(b.readUInt16LE(52)).toBe(0);
    expect(b.readUInt16LE(54)).toBe(2);
    expect(b.readBigUInt64LE(56)).toBe(2097152n);
    expect(b.readBigUInt64LE(64)).toBe(0n);
    expect(b.readUInt32LE(72)).toBe(1); // enum nd_pfn_mode: NONE 0, RAM 1, PMEM 2
    expect(b.readUInt32LE(84)).toBe(2097152);
    const nonzero = [...b.keys()].filter((i) => b[i] !== 0 && (i < 4088 || i >= 4096));
    const expectedNonzero = new Set([...Array(15).keys(), 54, 58, 72, 86]);
    expect(nonzero.filter((i) => i < 4088)).toEqual([...expectedNonzero].sort((x, y) => x - y));
  });

  it('checksum is nd_fletcher64 over the block with the checksum zeroed (closed form)', () => {
    const b = buildPfnSb({ dataOffset: 2 * MiB, align: 2 * MiB });
    // fletcher64 over N = 1024 LE u32 words w_j: lo = sum w_j mod 2^32, hi = sum_j w_j * (N - j) (no lo wrap-around here).
    let lo = 0n;
    let hi = 0n;
    for (let j = 0; j < 1022; j++) {
      const w = BigInt(b.readUInt32LE(j * 4));
      lo += w;
      hi += w * BigInt(1024 - j);
    }
    expect(lo).toBeLessThan(2n ** 32n);
    const expected = BigInt.asUintN(64, (hi << 32n) | lo);
    expect(b.readBigUInt64LE(4088)).toBe(expected);
    const z = Buffer.from(b);
    z.writeBigUInt64LE(0n, 4088);
    expect(ndFletcher64(z)).toBe(expected);
  });

  it('nd_fletcher64 wraps lo32 modulo 2^32 like the C u32', () => {
    const words = Buffer.alloc(8);
    words.writeUInt32LE(0xffffffff, 0);
    words.writeUInt32LE(2, 4);
    // lo: 0xffffffff, then 1 (wrapped); hi: 0xffffffff + 1
    expect(ndFletcher64(words)).toBe(((0x100000000n << 32n) % 2n ** 64n) | 1n);
  });

  it('parses back and is accepted by the nd_pfn_validate checks; damage is reported', () => {
    const b = buildPfnSb({ dataOffset: 2 * MiB, align: 2 * MiB });
    expect(parsePfnSb(b)).toMatchObject({
      signature: 'NVDIMM_PFN_INFO\0',
      mode: 1,
      versionMinor: 2,
      dataOffset: 2097152n,
      align: 2097152,
      checksumOk: true,
      parentUuidNull: true,
    });
    expect(pfnSbProblems(b, 128 * MiB)).toEqual([]);
    const flipped = Buffer.from(b);
    flipped[100] = 1;
    expect(pfnSbProblems(flipped, 128 * MiB).join()).toMatch(/checksum/);
    const pmem5 = buildPfnSb({ dataOffset: 2 * MiB, align: 2 * MiB, mode: 5 });
    expect(pfnSbProblems(pmem5, 128 * MiB).join()).toMatch(/mode 5/);
    const misaligned = buildPfnSb({ dataOffset: 3 * MiB, align: 2 * MiB });
    expect(pfnSbProblems(misaligned, 128 * MiB).join()).toMatch(/not aligned/);
    expect(pfnSbProblems(b, MiB).join()).toMatch(/exceeds|past/);
  });
});
