/**
 * The ext4 size estimate against a real mke2fs -d, and the sizes that hints
 * suggest, proven by building the image at them (buildImage, the code path of
 * `osbuilder image --size`). The trees are small; mke2fs, e2fsck and sfdisk
 * are real. mke2fs can be made to need more room than the estimate (as a
 * rootfs with extended attribute blocks does) to exercise the builder's retry.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execa } from 'execa';
import { mkdir, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '../support/fixtures.js';
import { OsbuilderError } from '../../core/errors.js';
import { buildImage } from '../../image-builder/index.js';
import { mke2fsArgs, mke2fsEnv } from '../../image-builder/mkfs.js';
import { scanRootfs, type RootfsStats } from '../../image-builder/scan.js';
import { ext4Fit, ext4Inodes, regionsFor, RESERVED_PERCENT, smallestSizeMiB } from '../../image-builder/size.js';
import { failure } from '../support/errors.js';
import { MiB } from '../../core/vocab.js';

/** mke2fs runs with fewer blocks than this fail as a full filesystem does (0: never). */
const fake = vi.hoisted(() => ({ mke2fsNeeds: 0 }));

vi.mock('../../core/exec.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../core/exec.js')>();
  return {
    ...real,
    run: async (cmd: string, args: readonly string[], opts?: Parameters<typeof real.run>[2]) => {
      if (cmd === 'mke2fs' && Number(args.at(-1)) < fake.mke2fsNeeds) {
        throw new OsbuilderError(
          'COMMAND_FAILED',
          'mke2fs failed (exit 1):\nmke2fs: Could not allocate block in ext2 filesystem while populating file system',
          '',
        );
      }
      return real.run(cmd, args, opts);
    },
  };
});

const BLOCK = 4096;
let work: string;
let tiny: string;
let mid: string;

/** File content without zero blocks (mke2fs -d leaves all-zero blocks as holes). */
function content(bytes: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: bytes }, (_, i) => ((i * 31 + seed) % 251) + 1));
}

async function makeTree(dir: string, bigFiles: number, smallFiles: number): Promise<string> {
  await mkdir(join(dir, 'etc/conf.d'), { recursive: true });
  const big = content(MiB, 7);
  for (let i = 0; i < bigFiles; i++) await writeFile(join(dir, `blob-${i}`), big);
  for (let i = 0; i < smallFiles; i++) await writeFile(join(dir, 'etc/conf.d', `file-${String(i).padStart(4, '0')}.conf`), content(100 + (i % 9000), i));
  await symlink('/'.padEnd(80, 'x'), join(dir, 'etc/long-link'));
  await symlink('conf.d', join(dir, 'etc/short-link'));
  return dir;
}

/** Whether mke2fs -d, with the builder's arguments, fills `blocks` blocks with `tree`. */
async function mke2fsFills(tree: string, stats: RootfsStats, blocks: number): Promise<boolean> {
  const dev = join(work, 'probe.img');
  await rm(dev, { force: true });
  await writeFile(dev, '');
  await truncate(dev, blocks * BLOCK);
  const args = mke2fsArgs({
    device: dev,
    offset: 0,
    bytes: blocks * BLOCK,
    rootfs: tree,
    uuid: '6b4f2d4e-9b3a-4c39-a7a3-0c5f0e1d2b3a',
    hashSeed: '0e1d2b3a-9b3a-4c39-a7a3-6b4f2d4e0c5f',
    inodes: ext4Inodes(blocks * BLOCK, stats),
  });
  const r = await execa('mke2fs', args, { env: mke2fsEnv(0), reject: false });
  if (r.exitCode !== 0) return false;
  await execa('e2fsck', ['-f', '-n', dev]);
  return true;
}

/** The size a hint suggests: `use --size N`. */
function hintedSize(err: OsbuilderError): number {
  const m = /^use --size (\d+)\b/.exec(err.hint);
  expect(m, err.hint).not.toBeNull();
  return Number(m![1]);
}

const image = (rootfs: string, name: string, sizeMiB?: number, fsType = 'ext4') =>
  buildImage({ rootfs, output: join(work, name), fsType, skipAgentCheck: true, sourceDateEpoch: 1_700_000_000, ...(sizeMiB !== undefined ? { sizeMiB } : {}) });

beforeAll(async () => {
  work = await makeTempDir('osb-image-size-');
  tiny = await makeTree(join(work, 'tiny'), 0, 3);
  mid = await makeTree(join(work, 'mid'), 20, 600);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('ext4 estimate vs mke2fs -d', () => {
  it.each(['tiny', 'mid'])('%s tree: the smallest partition the estimate accepts is filled, one 64 blocks smaller is not', async (name) => {
    const tree = name === 'tiny' ? tiny : mid;
    const stats = scanRootfs(tree);
    let blocks = stats.dataBlocks;
    while (!ext4Fit(blocks * BLOCK, stats, 0).fits) blocks++;
    expect(await mke2fsFills(tree, stats, blocks)).toBe(true);
    expect(await mke2fsFills(tree, stats, Math.max(blocks - 64, 16))).toBe(false);
  });

  it('accepts a root partition the old estimate refused (3 % reserved + 1 % + 1 MiB slack) and mke2fs fills it', async () => {
    const stats = scanRootfs(mid);
    const sizeMiB = 32;
    const root = regionsFor(sizeMiB * MiB, true, false)!.root.size;
    const fit = ext4Fit(root, stats, 0);
    const oldNeeded = fit.neededBlocks + Math.floor((fit.geometry.blocks * RESERVED_PERCENT) / 100) + Math.ceil(stats.dataBlocks * 0.01) + MiB / BLOCK;
    expect(oldNeeded).toBeGreaterThan(fit.geometry.blocks);
    expect(fit.fits).toBe(true);
    const r = await image(mid, 'old-refused.img', sizeMiB);
    expect(r.sizeBytes).toBe(sizeMiB * MiB);
    expect(r.checks).toContain('e2fsck -fn clean');
  });
});

describe('--root-free-space', () => {
  it('at the smallest size the estimate accepts, that much stays free for unprivileged users', async () => {
    const stats = scanRootfs(mid);
    const free = 8 * MiB;
    const n = smallestSizeMiB({ dax: true, verity: false, fits: (root) => ext4Fit(root, stats, free).fits });
    const r = await buildImage({ rootfs: mid, output: join(work, 'free.img'), skipAgentCheck: true, sizeMiB: n, rootFreeSpaceMiB: 8 });
    const head = (await execa('dumpe2fs', ['-h', `${r.path}?offset=${3 * MiB}`])).stdout;
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(head)?.[1]);
    expect((field('Free blocks') - field('Reserved block count')) * BLOCK).toBeGreaterThanOrEqual(free);
  });
});

describe('size hints name a size that builds', () => {
  it('--size 1 (odd, DAX): the hint is the smallest even size the rootfs fits in, and it builds', async () => {
    const err = await failure(image(tiny, 'odd.img', 1));
    expect(err.code).toBe('USAGE');
    const n = hintedSize(err);
    expect(n % 2).toBe(0);
    const r = await image(tiny, 'odd-hinted.img', n);
    expect((await stat(r.path)).size).toBe(n * MiB);
    expect((await failure(image(tiny, 'odd-below.img', n - 2))).code).toBe('TOO_LARGE');
  });

  it('an odd --size that would fit once aligned: the hint is the next even size', async () => {
    const err = await failure(image(mid, 'odd-mid.img', 41));
    expect(err.code).toBe('USAGE');
    expect(hintedSize(err)).toBe(42);
    await image(mid, 'odd-mid-hinted.img', 42);
  });

  it('erofs, odd --size: the hint comes from the made filesystem and builds', async () => {
    const err = await failure(image(mid, 'odd.erofs.img', 29, 'erofs'));
    expect(err.code).toBe('USAGE');
    const n = hintedSize(err);
    expect(n).toBeGreaterThan(29);
    const r = await image(mid, 'odd-hinted.erofs.img', n, 'erofs');
    expect(r.sizeBytes).toBe(n * MiB);
  });

  it('--size too small: TOO_LARGE hints the smallest size that fits; it builds, 2 MiB less does not', async () => {
    const err = await failure(image(mid, 'small.img', 8));
    expect(err.code).toBe('TOO_LARGE');
    const n = hintedSize(err);
    expect(err.message).toContain(`the smallest size that fits is ${n} MiB`);
    const r = await image(mid, 'small-hinted.img', n);
    expect(r.sizeBytes).toBe(n * MiB);
    expect((await failure(image(mid, 'small-below.img', n - 2))).code).toBe('TOO_LARGE');
  });
});

describe('mke2fs needs more than the estimate', () => {
  it('explicit --size: TOO_LARGE whose hint is a size mke2fs filled; that size builds', async () => {
    const stats = scanRootfs(mid);
    let sizeMiB = 6;
    while (!ext4Fit(regionsFor(sizeMiB * MiB, true, false)!.root.size, stats, 0).fits) sizeMiB += 2;
    fake.mke2fsNeeds = regionsFor((sizeMiB + 4) * MiB, true, false)!.root.size / BLOCK;
    try {
      const err = await failure(image(mid, 'short.img', sizeMiB));
      expect(err.code).toBe('TOO_LARGE');
      expect(err.message).toContain('mke2fs -d ran out of room');
      const n = hintedSize(err);
      expect(n).toBeGreaterThanOrEqual(sizeMiB + 4);
      const r = await image(mid, 'short-hinted.img', n);
      expect(r.sizeBytes).toBe(n * MiB);
    } finally {
      fake.mke2fsNeeds = 0;
    }
  });

  it('automatic size: grows by 128 MiB and builds', async () => {
    fake.mke2fsNeeds = regionsFor(200 * MiB, true, false)!.root.size / BLOCK;
    try {
      const r = await image(mid, 'auto.img');
      expect(r.sizeBytes).toBe(256 * MiB);
    } finally {
      fake.mke2fsNeeds = 0;
    }
  });
});
