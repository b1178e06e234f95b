#!/usr/bin/env node
// Initrd build: `osbuilder initrd` (streaming newc writer, verification included)
// against Kata's `find . | cpio -H newc -o | gzip -9`, run in the rootfs directory,
// on the same Debian bookworm minbase tree (the test fixture, with an /init).
// Goals: default ≥ 4× faster (time ratio ≤ 0.25) and not larger (size ratio ≤ 1.0).
// One row per codec too. Needs `npm run build`. Usage: node bench/initrd.mjs
//   OSBUILDER_BENCH_RUNS=<n>   runs per side (default 1; the median is reported)
import { execa } from 'execa';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInitrd, CODECS, COMPRESSIONS, DEFAULT_COMPRESSION } from '../dist/initrd-builder/index.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';

const RUNS = Number(process.env.OSBUILDER_BENCH_RUNS ?? 1);
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

/** Same caches as test/support/fixtures.ts (debianMinbaseRootfs) and test/support/initrd.ts (debianMinbaseWithInit). */
async function debianWithInit() {
  const base = await cachedDir('debian-minbase-bookworm', (dir) =>
    execa('mmdebstrap', ['--variant=minbase', '--mode=root', '--skip=cleanup/apt/lists', 'bookworm', dir, MIRROR], { stdio: ['ignore', 2, 2] }),
  );
  return cachedDir('debian-minbase-bookworm-init', async (dir) => {
    await execa('cp', ['-a', '--', `${base}/.`, dir]);
    await writeFile(join(dir, 'init'), '#!/bin/sh\necho OSBUILDER-INIT-OK\n', { mode: 0o755 });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeIt(fn) {
  const t = performance.now();
  const r = await fn();
  return { ms: performance.now() - t, r };
}

async function kata(rootfs, out) {
  await execa('sh', ['-c', 'find . | cpio -H newc -o --quiet | gzip -9 > "$1"', 'sh', out], { cwd: rootfs });
  return (await stat(out)).size;
}

async function ours(rootfs, out, compression, level) {
  return (await buildInitrd({ rootfs, output: out, compression, level })).sizeBytes;
}

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;

export async function run() {
  configureLog({ json: true });
  const rootfs = await debianWithInit();
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-initrd-'));
  try {
    const base = [];
    let baseSize = 0;
    const runsOf = {};
    const sizeOf = {};
    // Each codec at its default level, plus zstd at the levels around the default (the choice is explained in
    // initrd-builder/codecs.ts).
    const cases = [DEFAULT_COMPRESSION, ...COMPRESSIONS.filter((c) => c !== DEFAULT_COMPRESSION), 'zstd:1', 'zstd:9'];
    for (let i = 0; i < RUNS; i++) {
      const b = await timeIt(() => kata(rootfs, join(work, 'kata.initrd')));
      base.push(b.ms);
      baseSize = b.r;
      for (const c of cases) {
        const [codec, level] = c.split(':');
        const o = await timeIt(() => ours(rootfs, join(work, `ours.${codec}`), codec, level === undefined ? undefined : Number(level)));
        (runsOf[c] ??= []).push(o.ms);
        sizeOf[c] = o.r;
      }
    }
    const bm = median(base);
    const label = (c) => {
      const [codec, level] = c.split(':');
      return codec === 'none' ? 'none' : `${codec} -${level ?? CODECS[codec].levels.default}`;
    };
    const rows = [];
    const dm = median(runsOf[DEFAULT_COMPRESSION]);
    rows.push({
      name: `time: default (${label(DEFAULT_COMPRESSION)}) vs find|cpio|gzip -9`,
      ours_ms: dm,
      baseline_ms: bm,
      goal: '≤ 0.25× (≥ 4× faster)',
      note: `${(bm / dm).toFixed(1)}× faster; Debian minbase, ${RUNS} run(s), ours includes read-back verification`,
    });
    rows.push({
      name: `size: default (${label(DEFAULT_COMPRESSION)}) vs find|cpio|gzip -9`,
      ours_bytes: sizeOf[DEFAULT_COMPRESSION],
      baseline_bytes: baseSize,
      goal: '≤ 1.0',
      note: `${mb(sizeOf[DEFAULT_COMPRESSION])} vs ${mb(baseSize)}`,
    });
    for (const c of cases) {
      const m = median(runsOf[c]);
      rows.push({
        name: `codec ${label(c)}`,
        ours_ms: m,
        baseline_ms: bm,
        goal: '',
        note: `size ${mb(sizeOf[c])} (${(sizeOf[c] / baseSize).toFixed(3)}× gzip -9's)`,
      });
    }
    return rows;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
