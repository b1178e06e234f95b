/** Size computation: ext4 geometry model, 128 MiB alignment, free space, --size, verity hash area. */
import { describe, expect, it } from 'vitest';
import { directoryBlocks, type RootfsStats } from '../../image-builder/scan.js';
import { ext4Fit, ext4Geometry, grownSize, journalBlocks, planSize, regionsFor, smallestSizeMiB, verityHashBytes } from '../../image-builder/size.js';
import { MiB } from '../../core/vocab.js';

const stats = (dataMiB: number, inodes = 1000): RootfsStats => ({
  inodes,
  files: inodes,
  directories: 1,
  symlinks: 0,
  others: 0,
  fileBytes: dataMiB * MiB,
  dataBlocks: (dataMiB * MiB) / 4096,
});

describe('ext4 geometry model', () => {
  it('matches what mke2fs 1.47 lays out for a 380 MiB partition (observed: 24336 inodes, 16 MiB journal)', () => {
    const g = ext4Geometry(380 * MiB, Math.floor((380 * MiB) / 16384));
    expect(g).toMatchObject({ blocks: 97280, groups: 3, inodes: 24336 });
    expect(journalBlocks(97280)).toBe(4096);
    expect(journalBlocks(31744)).toBe(1024);
    expect(journalBlocks(600 * 1024)).toBe(16384);
  });

  it('drops a last group too small for its metadata + 50 blocks, as mke2fs does (observed: 32868 and 33088 blocks become 32768, 33108 stays)', () => {
    expect(ext4Geometry(32868 * 4096, 8222).blocks).toBe(32768);
    expect(ext4Geometry(33088 * 4096, 8272).blocks).toBe(32768);
    expect(ext4Geometry(33108 * 4096, 8277).blocks).toBe(33108);
    // A single group that small cannot be made ("Not enough space to build proposed filesystem" at 54 blocks, fine at 60).
    expect(ext4Geometry(54 * 4096, 96).blocks).toBe(0);
    expect(ext4Geometry(60 * 4096, 96).blocks).toBe(60);
    expect(ext4Fit(54 * 4096, stats(0, 7), 0).fits).toBe(false);
  });

  it('asks for more inodes than the 16 KiB ratio when the rootfs has many files', () => {
    const f = ext4Fit(124 * MiB, stats(10, 20000), 0);
    expect(f.geometry.inodes).toBeGreaterThanOrEqual(20000 + 11);
  });
});

describe('planSize', () => {
  const fitsExt4 =
    (s: RootfsStats, free = 0) =>
    (root: number) =>
      ext4Fit(root, s, free).fits;

  it('picks the smallest multiple of 128 MiB that holds the rootfs', () => {
    expect(planSize({ dax: true, verity: false, fits: fitsExt4(stats(50)) })!.totalBytes).toBe(128 * MiB);
    expect(planSize({ dax: true, verity: false, fits: fitsExt4(stats(150)) })!.totalBytes).toBe(256 * MiB);
    const p = planSize({ dax: true, verity: false, fits: fitsExt4(stats(240)) })!;
    expect(p.totalBytes % (128 * MiB)).toBe(0);
    expect(p.totalBytes).toBe(384 * MiB);
    expect(p.root).toEqual({ start: 3 * MiB, size: 380 * MiB });
  });

  it('--root-free-space grows the image', () => {
    const small = planSize({ dax: true, verity: false, fits: fitsExt4(stats(50)) })!;
    const withFree = planSize({ dax: true, verity: false, fits: fitsExt4(stats(50), 200 * MiB) })!;
    expect(small.totalBytes).toBe(128 * MiB);
    expect(withFree.totalBytes).toBe(384 * MiB);
  });

  it('--size: used as given when the rootfs fits, undefined when it does not', () => {
    expect(planSize({ dax: false, verity: false, sizeMiB: 100, fits: fitsExt4(stats(50)) })).toEqual({
      totalBytes: 100 * MiB,
      root: { start: MiB, size: 98 * MiB },
    });
    expect(planSize({ dax: true, verity: false, sizeMiB: 64, fits: fitsExt4(stats(100)) })).toBeUndefined();
    const smallest = smallestSizeMiB({ dax: true, verity: false, fits: fitsExt4(stats(100)) })!;
    expect(smallest % 2).toBe(0);
    expect(planSize({ dax: true, verity: false, sizeMiB: smallest, fits: fitsExt4(stats(100)) })).toBeDefined();
    expect(planSize({ dax: true, verity: false, sizeMiB: smallest - 2, fits: fitsExt4(stats(100)) })).toBeUndefined();
  });

  it('after mke2fs ran out of room: 128 MiB more when automatic, a quarter more (DAX: even) for an explicit size', () => {
    expect(grownSize(regionsFor(128 * MiB, true, false)!, true, false, true)!.totalBytes).toBe(256 * MiB);
    expect(grownSize(regionsFor(30 * MiB, true, false)!, true, false, false)!.totalBytes).toBe(38 * MiB);
    expect(grownSize(regionsFor(6 * MiB, true, false)!, true, false, false)!.totalBytes).toBe(8 * MiB);
    expect(grownSize(regionsFor(9 * MiB, false, false)!, false, false, false)!.totalBytes).toBe(12 * MiB);
    expect(grownSize(regionsFor(2 * 1024 * 1024 * MiB, true, false)!, true, false, true)).toBeUndefined();
  });

  it('regions: DAX root at 3 MiB, plain at 1 MiB, 1 MiB left at the end; too small = undefined', () => {
    expect(regionsFor(128 * MiB, true, false)).toEqual({ totalBytes: 128 * MiB, root: { start: 3 * MiB, size: 124 * MiB } });
    expect(regionsFor(128 * MiB, false, false)).toEqual({ totalBytes: 128 * MiB, root: { start: MiB, size: 126 * MiB } });
    expect(regionsFor(4 * MiB, true, false)).toBeUndefined();
  });

  it('verity: hash partition after the root, sized for its tree, ending 1 MiB before the end', () => {
    // 31488 data blocks: 246 + 2 + 1 tree blocks + 1 superblock block
    expect(verityHashBytes(31488)).toBe(250 * 4096);
    expect(verityHashBytes(1)).toBe(2 * 4096);
    expect(verityHashBytes(128 * 128 + 1)).toBe((129 + 2 + 1 + 1) * 4096);
    const r = regionsFor(1024 * MiB, true, true)!;
    expect(r.root.start).toBe(3 * MiB);
    expect(r.hash!.start).toBe(r.root.start + r.root.size);
    expect(r.hash!.start + r.hash!.size).toBe(1023 * MiB);
    expect(r.hash!.size).toBeGreaterThanOrEqual(verityHashBytes(r.root.size / 4096));
    expect(r.hash!.size % MiB).toBe(0);
  });
});

describe('directory blocks', () => {
  it('one block for small directories, more for long ones', () => {
    expect(directoryBlocks([])).toBe(1);
    expect(directoryBlocks(['a', 'b'])).toBe(1);
    const many = Array.from({ length: 1000 }, (_, i) => `file-name-${i}.conf`);
    // 1000 entries of 8 + 16..19 bytes rounded to 4: ~28 KB, at least 7 blocks
    expect(directoryBlocks(many)).toBeGreaterThanOrEqual(7);
  });
});
