#!/usr/bin/env node
// Kernel source setup: our checked extraction (kernel/source.ts extractTarball:
// one decompression feeding node-tar's entry checker and GNU tar, temp dir
// renamed into place) against a bare `tar -xJf` of the same tarball into a
// fresh directory. Goal: ours ≤ 1.1× the bare tar.
//
// The machine is shared and noisy: the two run alternately (ours, tar, ours,
// tar, …) and each row is the median of $OSBUILDER_BENCH_RUNS runs (default 3).
// A breakdown row times the pieces once each (decompression alone, the check
// pass alone) to show where any extra time goes.
// Tarball: $OSBUILDER_TEST_KERNEL_TARBALL, else /usr/src/linux-source-6.1.tar.xz.
// Needs `npm run build`.
import { execa } from 'execa';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { extractTarball } from '../dist/kernel/source.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';
import { median, timed } from './lib/stats.mjs';

const TARBALL = process.env.OSBUILDER_TEST_KERNEL_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';
const RUNS = Math.max(1, Number(process.env.OSBUILDER_BENCH_RUNS ?? 3) || 3);

const fmt = (xs) => xs.map((x) => (x / 1000).toFixed(1)).join('/');

/** node-tar's parser over `xz -dc` output, writing nothing: the check pass alone. */
async function checkOnly() {
  const xz = execa('xz', ['-dc', '-T2', '--', TARBALL], { buffer: { stdout: false } });
  const parser = tar.t({ strict: true, filter: () => false });
  const done = new Promise((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  xz.stdout.pipe(parser);
  await Promise.all([xz, done]);
}

async function breakdown() {
  const one = await timed(() => execa('sh', ['-c', 'xz -dc -- "$1" >/dev/null', 'sh', TARBALL]));
  const two = await timed(() => execa('sh', ['-c', 'xz -dc -T2 -- "$1" >/dev/null', 'sh', TARBALL]));
  const check = await timed(checkOnly);
  return { one, two, check };
}

export async function run() {
  configureLog({ json: true });
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-ksetup-'));
  try {
    const ours = [];
    const base = [];
    for (let i = 0; i < RUNS; i++) {
      const a = join(work, `ours-${i}`);
      ours.push(await timed(() => extractTarball(TARBALL, 'xz', a)));
      await rm(a, { recursive: true, force: true });
      const b = join(work, `tar-${i}`);
      await mkdir(b);
      base.push(await timed(() => execa('tar', ['-xJf', TARBALL, '-C', b])));
      await rm(b, { recursive: true, force: true });
    }
    const parts = await breakdown();
    return [
      {
        name: `setup: checked extraction of ${TARBALL.split('/').pop()} vs bare tar -xJf`,
        ours_ms: median(ours),
        baseline_ms: median(base),
        goal: 'ratio ≤ 1.1',
        note: `median of ${RUNS} alternating runs (s): ours ${fmt(ours)}, tar ${fmt(base)}`,
      },
      {
        name: "setup breakdown: check pass alone (xz -dc -T2 into node-tar's parser) vs xz -dc alone",
        ours_ms: parts.check,
        baseline_ms: parts.one,
        goal: '',
        note: `one run each: xz -dc ${fmt([parts.one])} s, xz -dc -T2 ${fmt([parts.two])} s, check pass ${fmt([parts.check])} s`,
      },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
