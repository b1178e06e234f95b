#!/usr/bin/env node
// What parity with Kata's kernel costs: the default (parity) x86_64 kernel
// against the lean one osbuilder built before (bench/fixtures/kernel-lean-
// 6.1-x86_64.defconfig, expanded by `make olddefconfig`), both from the same
// Linux 6.1 tree on this machine, side by side:
// 1. build time: `make clean`, then `make -jN bzImage` (N = all cores), lean
//    and parity in turn on the one tree;
// 2. bzImage size (goal: parity ≤ 10 MiB);
// 3. boot to agent ready (TCG where KVM does not run guests), the same
//    busybox + agent initrd, alternating lean / parity / Debian's cloud kernel
//    (to /init, as bench/boot.mjs): medians of $OSBUILDER_BENCH_RUNS (default 3).
//    Goal: parity within 1.2× of lean.
// The parity config is what `osbuilder kernel setup` writes for the tree.
// Tarball: $OSBUILDER_TEST_KERNEL_TARBALL, else /usr/src/linux-source-6.1.tar.xz.
// Needs `npm run build`; takes two kernel builds (~15-25 min on 2 cores).
import { execa } from 'execa';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findQemu, resolveAccel } from '../dist/runtime/index.js';
import { configureLog } from '../dist/core/log.js';
import { agentInitrd, bootOnce, debianCloudKernel } from './boot.mjs';
import { mainIfRun } from './lib/rows.mjs';
import { median, timed } from './lib/stats.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'dist/cli/index.js');
const TARBALL = process.env.OSBUILDER_TEST_KERNEL_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';
const LEAN = join(REPO, 'bench/fixtures/kernel-lean-6.1-x86_64.defconfig');
const RUNS = Number(process.env.OSBUILDER_BENCH_RUNS ?? 3);
const MiB = 1024 * 1024;

const make = (tree, args) => execa('make', ['-s', 'ARCH=x86_64', ...args], { cwd: tree });

/** Builds bzImage from `config` in `tree` (cleaned first); its path in `work`, the seconds make took and its size. */
async function buildWith(tree, config, name, work) {
  await make(tree, ['clean']);
  await copyFile(config, join(tree, '.config'));
  await make(tree, ['olddefconfig']);
  const ms = await timed(() => make(tree, [`-j${availableParallelism()}`, 'bzImage']));
  const bzImage = join(work, `${name}.bzImage`);
  await copyFile(join(tree, 'arch/x86/boot/bzImage'), bzImage);
  return { bzImage, ms, bytes: (await stat(bzImage)).size };
}

/** The parity tree and config (`osbuilder kernel setup`), and both kernels built in it. */
async function buildBoth(work) {
  const tree = join(work, 'linux');
  await execa('node', [CLI, 'kernel', 'setup', '--kernel-source', TARBALL, '-v', '6.1', '-a', 'x86_64', '-k', tree], { stdio: 'inherit' });
  const parityConfig = join(work, 'parity.config');
  await copyFile(join(tree, '.config'), parityConfig);
  const lean = await buildWith(tree, LEAN, 'lean', work);
  const parity = await buildWith(tree, parityConfig, 'parity', work);
  return { lean, parity };
}

async function bootRuns(work, kernels) {
  const qemu = (await findQemu('qemu-system-x86_64')).path;
  if (!qemu) throw new Error('qemu-system-x86_64 is not installed');
  const { accel, reason } = await resolveAccel('auto', qemu);
  const { initrd } = await agentInitrd(work);
  const debian = await debianCloudKernel();
  const ms = { lean: [], parity: [], debian: [] };
  for (let i = 0; i < RUNS; i++) {
    ms.lean.push(await bootOnce({ qemu, accel, kernel: kernels.lean.bzImage, initrd, console: 'hvc', work, i: `l${i}`, until: 'agent' }));
    ms.parity.push(await bootOnce({ qemu, accel, kernel: kernels.parity.bzImage, initrd, console: 'hvc', work, i: `p${i}`, until: 'agent' }));
    ms.debian.push(await bootOnce({ qemu, accel, kernel: debian, initrd, console: 'serial', work, i: `d${i}`, until: 'init' }));
  }
  return { ms, accel: `${accel} (${reason})` };
}

export async function run() {
  configureLog({ json: true });
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-parity-'));
  try {
    const k = await buildBoth(work);
    const { ms, accel } = await bootRuns(work, k);
    const runs = (xs) => xs.map(Math.round).join('/');
    return [
      {
        name: `parity kernel build vs the lean one (make -j${availableParallelism()} bzImage after make clean, same tree)`,
        ours_ms: k.parity.ms,
        baseline_ms: k.lean.ms,
        goal: '—',
        note: 'one build each, lean first',
      },
      {
        name: 'parity kernel bzImage vs the lean one',
        ours_bytes: k.parity.bytes,
        baseline_bytes: k.lean.bytes,
        goal: '≤ 10 MiB',
        note: `parity ${(k.parity.bytes / MiB).toFixed(1)} MiB, lean ${(k.lean.bytes / MiB).toFixed(1)} MiB`,
      },
      {
        name: `parity kernel boot to agent ready vs the lean one, ${accel}`,
        ours_ms: median(ms.parity),
        baseline_ms: median(ms.lean),
        goal: '≤ 1.2×',
        note: `median of ${RUNS}, alternating; parity ${runs(ms.parity)} ms, lean ${runs(ms.lean)} ms; busybox + agent initrd, 512 MiB, 1 vCPU`,
      },
      {
        name: `parity kernel boot to agent ready vs Debian's cloud kernel to /init, ${accel}`,
        ours_ms: median(ms.parity),
        baseline_ms: median(ms.debian),
        goal: '≤ 0.6× (as bench/boot.mjs)',
        note: `same boots; debian ${runs(ms.debian)} ms`,
      },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
