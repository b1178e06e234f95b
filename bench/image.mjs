#!/usr/bin/env node
// Disk image build on the same Debian bookworm minbase tree (the test fixture
// with a stand-in agent and /sbin/init): `osbuilder image` (size computed,
// mke2fs -d at the partition offset, tables, DAX block, all verification
// included) against
//   - bare `mke2fs -t ext4 -d` into a file of the same size (goal ≤ 1.15×), and
//   - Kata's way: truncate, partition, losetup, mkfs.ext4 + tune2fs -m 3, mount,
//     cp -a, umount, fsck.ext4 -D -y, losetup -d (its size trials not counted),
//     where loop devices and mounts are permitted; skipped with the reason otherwise.
// Needs `npm run build` (and root for the Kata row). Usage: node bench/image.mjs
//   OSBUILDER_BENCH_RUNS=<n>   runs per side (default 3; the median is reported)
import { execa } from 'execa';
import { mkdir, mkdtemp, rename, rm, stat, writeFile, symlink } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../dist/image-builder/index.js';
import { configureLog } from '../dist/core/log.js';
import { MiB } from '../dist/core/vocab.js';
import { mainIfRun } from './lib/rows.mjs';
import { timed } from './lib/stats.mjs';

const RUNS = Number(process.env.OSBUILDER_BENCH_RUNS ?? 3);
const TEST_CACHE = process.env.OSBUILDER_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'osbuilder-test');
const MIRROR = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';

async function exists(p) {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

async function cachedDir(name, build) {
  const dir = join(TEST_CACHE, name);
  if (await exists(dir)) return dir;
  await mkdir(TEST_CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await build(tmp);
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

/** Same caches as test/support/fixtures.ts (debianMinbaseRootfs) and test/support/image.ts (debianKataRootfs). */
async function debianKata() {
  const base = await cachedDir('debian-minbase-bookworm', (dir) =>
    execa('mmdebstrap', ['--variant=minbase', '--mode=root', '--skip=cleanup/apt/lists', 'bookworm', dir, MIRROR], { stdio: ['ignore', 2, 2] }),
  );
  return cachedDir('debian-minbase-bookworm-kata', async (dir) => {
    await execa('cp', ['-a', `${base}/.`, dir]);
    await writeFile(join(dir, 'usr/bin/kata-agent'), '#!/bin/sh\n# stand-in for the agent: image tests check layout, they do not boot\nexec sleep infinity\n', {
      mode: 0o755,
    });
    await mkdir(join(dir, 'sbin'), { recursive: true });
    await symlink('/usr/bin/kata-agent', join(dir, 'sbin/init'));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bareMke2fs(rootfs, out, bytes) {
  await execa('truncate', ['-s', String(bytes), out]);
  await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', rootfs, out]);
}

/** Kata's image_builder.sh steps for one image of a known size; throws with the reason when the machine refuses. */
async function kataWay(rootfs, out, bytes, mnt) {
  await execa('truncate', ['-s', String(bytes), out]);
  const part = { start: MiB, size: bytes - 2 * MiB };
  await execa('sfdisk', ['-q', out], { input: `start=${part.start / 512}, size=${part.size / 512}, type=83\n` });
  let dev = String((await execa('losetup', ['-P', '-f', '--show', out])).stdout).trim();
  let node = `${dev}p1`;
  if (!(await exists(node))) {
    // No partition node (no partition scan / udev here): map the partition by offset instead, same work after this.
    await execa('losetup', ['-d', dev]);
    dev = String((await execa('losetup', ['-f', '--show', '-o', String(part.start), '--sizelimit', String(part.size), out])).stdout).trim();
    node = dev;
  }
  try {
    await execa('mkfs.ext4', ['-q', '-F', '-b', '4096', node]);
    await execa('tune2fs', ['-m', '3', node]);
    await execa('mount', [node, mnt]);
    try {
      await execa('sh', ['-c', 'cp -a "$1"/* "$2"', 'sh', rootfs, mnt]);
    } finally {
      await execa('umount', [mnt]);
    }
    await execa('fsck.ext4', ['-D', '-y', node], { reject: false });
  } finally {
    await execa('losetup', ['-d', dev]);
  }
  return node === dev ? 'losetup -P made no partition node here: partition mapped with losetup -o/--sizelimit' : 'losetup -P';
}

/** One Kata-way build timed, or why it cannot run here. */
async function timeKata(rootfs, out, size, mnt) {
  try {
    const t = performance.now();
    const note = await kataWay(rootfs, out, size, mnt);
    return { ms: performance.now() - t, note };
  } catch (err) {
    return { skip: `skipped: ${String(err.shortMessage ?? err.message).split('\n')[0]}` };
  } finally {
    await rm(out, { force: true });
  }
}

/** RUNS builds of each side: ours (random ids, then SOURCE_DATE_EPOCH), bare mke2fs, Kata's (until it is refused). */
async function measure(rootfs, work, mnt) {
  const m = { plain: [], sde: [], bare: [], kata: [], size: 0, kataNote: '', kataSkip: undefined };
  for (let i = 0; i < RUNS; i++) {
    const img = join(work, `ours-${i}.img`);
    m.plain.push(await timed(async () => (m.size = (await buildImage({ rootfs, output: img, sourceDateEpoch: null })).sizeBytes)));
    await rm(img);
    m.sde.push(await timed(() => buildImage({ rootfs, output: img, sourceDateEpoch: 1700000000 })));
    await rm(img);
    const b = join(work, `bare-${i}.img`);
    m.bare.push(await timed(() => bareMke2fs(rootfs, b, m.size)));
    await rm(b);
    if (m.kataSkip !== undefined) continue;
    const k = await timeKata(rootfs, join(work, `kata-${i}.img`), m.size, mnt);
    if (k.skip) m.kataSkip = k.skip;
    else {
      m.kata.push(k.ms);
      m.kataNote = k.note;
    }
  }
  return m;
}

function rows(m) {
  const o = median(m.plain);
  const b = median(m.bare);
  const note = `${m.size / MiB} MiB image, median of ${RUNS}`;
  const kataRow = m.kata.length
    ? { ours_ms: o, baseline_ms: median(m.kata), goal: '< 1×', note: `${m.kataNote}; Kata's size trials not counted` }
    : { note: m.kataSkip };
  return [
    {
      name: 'image vs bare mke2fs -d (same size)',
      ours_ms: o,
      baseline_ms: b,
      goal: '≤ 1.15×',
      note: `${note}; ours: DAX layout, checks (e2fsck, sfdisk x2, DAX block)`,
    },
    {
      name: 'image, SOURCE_DATE_EPOCH, vs bare mke2fs -d',
      ours_ms: median(m.sde),
      baseline_ms: b,
      goal: '≤ 1.15×',
      note: 'reproducible build: fixed ids, inode times rewritten',
    },
    { name: "image vs Kata's loop + mount + cp -a", ...kataRow },
  ];
}

export async function run() {
  configureLog({ json: true });
  const rootfs = await debianKata();
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-image-'));
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  try {
    return rows(await measure(rootfs, work, mnt));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
