/**
 * Partition tables as bytes: both MBRs of the DAX layout, the plain MBR, and
 * the GPT (headers, entries, CRC32s checked with a CRC written here, not zlib's).
 */
import { describe, expect, it } from 'vitest';
import { buildMbr, buildProtectiveMbr, chsBytes, parseMbr } from '../../image-builder/mbr.js';
import { buildGpt, GPT_TYPE_LINUX_FS } from '../../image-builder/gpt.js';
import { guidFromBytes, guidToBytes, imageIds } from '../../image-builder/ids.js';
import { planTables } from '../../image-builder/layout.js';
import { regionsFor } from '../../image-builder/size.js';
import { MiB } from '../../core/vocab.js';

/** Bitwise CRC-32 (IEEE 802.3, reflected 0xEDB88320), independent of node:zlib. */
function crc32Ref(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const ids = imageIds(1700000000);

describe('MBR', () => {
  it('lays out signature, entries and the boot mark byte by byte', () => {
    const b = buildMbr([{ startLba: 6144, sectors: 253952, type: 0x83 }], 0x12345678);
    expect(b.length).toBe(512);
    expect(b.subarray(0, 440).every((x) => x === 0)).toBe(true);
    expect([...b.subarray(440, 444)]).toEqual([0x78, 0x56, 0x34, 0x12]);
    const e = b.subarray(446, 462);
    expect(e[0]).toBe(0x00);
    // LBA 6144 with 255 heads, 63 sectors: c=0, h=97, s=34
    expect([...e.subarray(1, 4)]).toEqual([97, 34, 0]);
    expect(e[4]).toBe(0x83);
    expect(e.readUInt32LE(8)).toBe(6144);
    expect(e.readUInt32LE(12)).toBe(253952);
    expect(b.subarray(462, 510).every((x) => x === 0)).toBe(true);
    expect([b[510], b[511]]).toEqual([0x55, 0xaa]);
  });

  it('caps CHS past cylinder 1023 and round-trips through the parser', () => {
    expect(chsBytes(0)).toEqual([0, 1, 0]);
    expect(chsBytes(2048)).toEqual([32, 33, 0]);
    expect(chsBytes(1024 * 255 * 63)).toEqual([254, 0xff, 0xff]);
    const b = buildMbr(
      [
        { startLba: 2048, sectors: 100, type: 0x83, bootable: true },
        { startLba: 4096, sectors: 8, type: 0x83 },
      ],
      7,
    );
    expect(parseMbr(b)).toEqual({
      diskSignature: 7,
      entries: [
        { index: 1, bootable: true, type: 0x83, startLba: 2048, sectors: 100 },
        { index: 2, bootable: false, type: 0x83, startLba: 4096, sectors: 8 },
      ],
    });
  });

  it('refuses what 32-bit sectors cannot address', () => {
    expect(() => buildMbr([{ startLba: 2048, sectors: 2 ** 32, type: 0x83 }], 1)).toThrow(/32-bit/);
  });
});

describe("Kata's DAX layout", () => {
  const size = regionsFor(256 * MiB, true, false)!;
  const plan = planTables(size, { dax: true, table: 'mbr', ids });

  it('MBR #1 at 0 puts the root at 3 MiB, MBR #2 at 2 MiB puts it at 1 MiB, same length, ending 1 MiB before the end', () => {
    expect(plan.writes.map((w) => [w.offset, w.bytes.length])).toEqual([
      [0, 512],
      [4096, 4096],
      [2 * MiB, 512],
    ]);
    const m1 = parseMbr(plan.writes[0]!.bytes);
    const m2 = parseMbr(plan.writes[2]!.bytes);
    expect(m1.entries).toEqual([{ index: 1, bootable: false, type: 0x83, startLba: (3 * MiB) / 512, sectors: (252 * MiB) / 512 }]);
    expect(m2.entries).toEqual([{ index: 1, bootable: false, type: 0x83, startLba: MiB / 512, sectors: (252 * MiB) / 512 }]);
    expect(m1.diskSignature).not.toBe(m2.diskSignature);
    expect(plan.partitions).toEqual([{ number: 1, role: 'root', start: 3 * MiB, size: 252 * MiB, type: '83' }]);
    expect(plan.views.map((v) => v.offset)).toEqual([0, 2 * MiB]);
  });

  it('with verity both MBRs describe the root and the hash partition, root marked bootable as Kata does', () => {
    const v = regionsFor(256 * MiB, true, true)!;
    const p = planTables(v, { dax: true, table: 'mbr', ids });
    const m1 = parseMbr(p.writes[0]!.bytes).entries;
    const m2 = parseMbr(p.writes[2]!.bytes).entries;
    expect(m1).toHaveLength(2);
    expect(m1[0]).toMatchObject({ bootable: true, startLba: 6144, sectors: v.root.size / 512 });
    expect(m1[1]).toMatchObject({ bootable: false, startLba: v.hash!.start / 512, sectors: v.hash!.size / 512 });
    expect(m2.map((e) => e.startLba)).toEqual([m1[0]!.startLba - 4096, m1[1]!.startLba - 4096]);
    expect(v.hash!.start + v.hash!.size).toBe(255 * MiB);
  });

  it('--no-dax: one MBR, root from 1 MiB to 1 MiB before the end', () => {
    const p = planTables(regionsFor(128 * MiB, false, false)!, { dax: false, table: 'mbr', ids });
    expect(p.writes).toHaveLength(1);
    expect(parseMbr(p.writes[0]!.bytes).entries).toEqual([{ index: 1, bootable: false, type: 0x83, startLba: 2048, sectors: (126 * MiB) / 512 }]);
  });
});

describe('GPT', () => {
  const total = 128 * MiB;
  const sectors = total / 512;
  const size = regionsFor(total, false, false)!;
  const plan = planTables(size, { dax: false, table: 'gpt', ids });
  const [primary, backup] = plan.writes;

  it('encodes GUIDs mixed-endian (Linux filesystem type)', () => {
    expect(guidToBytes(GPT_TYPE_LINUX_FS).toString('hex')).toBe('af3dc60f83847247' + '8e793d69d8477de4');
    expect(guidFromBytes(guidToBytes(ids.diskGuid))).toBe(ids.diskGuid);
  });

  it('protective MBR, primary header at LBA 1 and entries at LBA 2 with correct CRC32s', () => {
    expect(primary!.offset).toBe(0);
    expect(primary!.bytes.length).toBe(34 * 512);
    const mbr = parseMbr(primary!.bytes.subarray(0, 512));
    expect(mbr.entries).toEqual([{ index: 1, bootable: false, type: 0xee, startLba: 1, sectors: sectors - 1 }]);
    const h = primary!.bytes.subarray(512, 1024);
    expect(h.toString('latin1', 0, 8)).toBe('EFI PART');
    expect(h.readUInt32LE(8)).toBe(0x00010000);
    expect(h.readUInt32LE(12)).toBe(92);
    const zeroed = Buffer.from(h.subarray(0, 92));
    zeroed.writeUInt32LE(0, 16);
    expect(h.readUInt32LE(16)).toBe(crc32Ref(zeroed));
    expect(h.subarray(92).every((x) => x === 0)).toBe(true);
    expect(h.readBigUInt64LE(24)).toBe(1n);
    expect(h.readBigUInt64LE(32)).toBe(BigInt(sectors - 1));
    expect(h.readBigUInt64LE(40)).toBe(34n);
    expect(h.readBigUInt64LE(48)).toBe(BigInt(sectors - 34));
    expect(guidFromBytes(h.subarray(56, 72))).toBe(ids.diskGuid);
    expect(h.readBigUInt64LE(72)).toBe(2n);
    expect(h.readUInt32LE(80)).toBe(128);
    expect(h.readUInt32LE(84)).toBe(128);
    const array = primary!.bytes.subarray(1024, 1024 + 16384);
    expect(h.readUInt32LE(88)).toBe(crc32Ref(array));
    const e = array.subarray(0, 128);
    expect(guidFromBytes(e.subarray(0, 16))).toBe(GPT_TYPE_LINUX_FS);
    expect(guidFromBytes(e.subarray(16, 32))).toBe(ids.partitionGuids[0]);
    expect(e.readBigUInt64LE(32)).toBe(2048n);
    expect(e.readBigUInt64LE(40)).toBe(BigInt((total - MiB) / 512 - 1));
    expect(e.readBigUInt64LE(48)).toBe(0n);
    expect(e.toString('utf16le', 56, 56 + 12)).toBe('rootfs');
    expect(array.subarray(128).every((x) => x === 0)).toBe(true);
  });

  it('backup entries then backup header end the disk, pointing back at the primary', () => {
    expect(backup!.offset).toBe((sectors - 33) * 512);
    expect(backup!.offset + backup!.bytes.length).toBe(total);
    const array = backup!.bytes.subarray(0, 16384);
    expect(array.equals(primary!.bytes.subarray(1024, 1024 + 16384))).toBe(true);
    const h = backup!.bytes.subarray(16384, 16384 + 512);
    const zeroed = Buffer.from(h.subarray(0, 92));
    zeroed.writeUInt32LE(0, 16);
    expect(h.readUInt32LE(16)).toBe(crc32Ref(zeroed));
    expect(h.readBigUInt64LE(24)).toBe(BigInt(sectors - 1));
    expect(h.readBigUInt64LE(32)).toBe(1n);
    expect(h.readBigUInt64LE(72)).toBe(BigInt(sectors - 33));
    expect(h.readUInt32LE(88)).toBe(crc32Ref(array));
  });

  it('refuses partitions outside the usable sectors and GPT with DAX', () => {
    expect(() =>
      buildGpt({
        totalSectors: 1000,
        diskGuid: ids.diskGuid,
        partitions: [{ typeGuid: GPT_TYPE_LINUX_FS, uniqueGuid: ids.partitionGuids[0], firstLba: 10, lastLba: 20, name: 'x' }],
      }),
    ).toThrow(/usable/);
    expect(() => planTables(size, { dax: true, table: 'gpt', ids })).toThrow();
  });

  it('protective MBR caps the size at 2^32-1 sectors', () => {
    expect(parseMbr(buildProtectiveMbr(2 ** 33)).entries[0]!.sectors).toBe(0xffffffff);
  });
});
