#!/usr/bin/env node
// Guest kernel stage vs the obvious alternatives, on the same prepared tree.
//
// 1. assemble + verify: our config step (allnoconfig base, fragments, real
//    `make olddefconfig`, Kconfig-explained verification of every option)
//    against Kata's `scripts/kconfig/merge_config.sh -r -n <fragments>` (which
//    only greps for "not in final"). Goal: ours ≤ 3 s. "warm" = the tree's
//    cached allnoconfig base exists (the normal case after the first setup);
//    "cold" = first run in a tree (allnoconfig computed).
// 2. build overhead: an incremental build (one source file touched, so one
//    compile + vmlinux relink + bzImage) through `osbuilder kernel build`
//    (CLI process, state checks, artifact hashing) against a bare
//    `make -jN ARCH=x86_64 bzImage vmlinux` on the same tree. Goal ≤ 5 %.
//    Runs on a copy of the tree so cached test artifacts stay intact.
//
// Tree: $OSBUILDER_BENCH_KERNEL_TREE, else the test cache's built guest kernel
// tree (npx vitest run test/integration/kernel-build.test.ts builds it), else a
// fresh extraction of /usr/src/linux-source-6.1.tar.xz (config rows only).
// OSBUILDER_BENCH_KERNEL_BUILD=0 skips the build rows. Needs `npm run build`.
import { execa } from 'execa';
import { cp, mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { homedir, tmpdir, availableParallelism } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assembleConfig } from '../dist/kernel/assemble.js';
import { selectFragments } from '../dist/kernel/fragments.js';
import { extractTarball } from '../dist/kernel/source.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cli = join(repo, 'dist/cli/index.js');
const TARBALL = process.env.OSBUILDER_TEST_KERNEL_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';

async function timed(fn) {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function findTree() {
  if (process.env.OSBUILDER_BENCH_KERNEL_TREE) return { tree: process.env.OSBUILDER_BENCH_KERNEL_TREE, built: true, temp: false };
  const cache = process.env.OSBUILDER_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'osbuilder-test');
  // The suite's kernel tree: test/support/kernel.ts builds it through the build cache's kernel stage.
  const trees = join(cache, 'build-cache', 'kernel-trees');
  for (const d of (await readdir(trees).catch(() => [])).filter((n) => n.startsWith('linux-') && n.endsWith('-x86_64'))) {
    const tree = join(trees, d);
    if (await stat(join(tree, 'vmlinux')).catch(() => undefined)) return { tree, built: true, temp: false };
  }
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-kernel-'));
  await extractTarball(TARBALL, 'xz', join(work, 'tree'));
  return { tree: join(work, 'tree'), built: false, temp: work };
}

async function configRows(tree) {
  const scratch = await mkdtemp(join(tmpdir(), 'osb-bench-kcfg-'));
  try {
    // cold: the tree has no cached allnoconfig base yet
    for (const f of await readdir(join(tree, '.osbuilder')).catch(() => [])) {
      if (f.startsWith('allnoconfig.')) await rm(join(tree, '.osbuilder', f), { force: true });
    }
    const [cold, first] = await timed(() => assembleConfig({ tree, arch: 'x86_64' }));
    if (!first.report.ok) throw new Error('default fragments do not verify on this tree');
    const ours = [];
    for (let i = 0; i < 3; i++) ours.push((await timed(() => assembleConfig({ tree, arch: 'x86_64' })))[0]);
    const frags = selectFragments({ arch: 'x86_64' });
    const { writeFile } = await import('node:fs/promises');
    const files = [];
    for (const [i, f] of frags.entries()) {
      const p = join(scratch, `${String(i).padStart(2, '0')}-${f.name.replace(/\//g, '_')}`);
      await writeFile(p, f.text);
      files.push(p);
    }
    const base = [];
    for (let i = 0; i < 3; i++) {
      base.push(
        (
          await timed(() =>
            // No -O: kbuild refuses an output dir beside a built source tree; KCONFIG_CONFIG keeps the tree's .config untouched.
            execa(join(tree, 'scripts/kconfig/merge_config.sh'), ['-r', '-n', ...files], { cwd: tree, env: { ...process.env, ARCH: 'x86_64', KCONFIG_CONFIG: join(scratch, '.config') } }),
          )
        )[0],
      );
    }
    const o = median(ours);
    const b = median(base);
    return [
      { name: 'assemble + verify x86_64 default, warm', ours_ms: o, baseline_ms: b, goal: 'ours ≤ 3000 ms', note: `median of 3; ${first.report.requested} options each explained on failure; baseline: merge_config.sh -r -n (greps "not in final")` },
      { name: 'assemble + verify x86_64 default, cold', ours_ms: cold, baseline_ms: b, goal: 'ours ≤ 3000 ms', note: 'first run in a tree: allnoconfig base computed (and scripts/kconfig built if needed)' },
    ];
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function buildRows(tree) {
  const jobs = availableParallelism();
  const work = await mkdtemp(join(dirname(tree), '.osb-bench-build-'));
  const copy = join(work, 'tree');
  try {
    await execa('cp', ['-a', '--reflink=auto', tree, copy]);
    const touch = async () => {
      const now = new Date();
      await utimes(join(copy, 'fs/ext4/super.c'), now, now);
    };
    const make = () => execa('make', [`-j${jobs}`, 'ARCH=x86_64', 'bzImage', 'vmlinux'], { cwd: copy, env: { ...process.env, KBUILD_BUILD_USER: 'osbuilder', KBUILD_BUILD_HOST: 'kata' } });
    const ours = () => execa('node', [cli, 'kernel', 'build', '-v', '6.1', '-a', 'x86_64', '-k', copy, '--make-jobs', String(jobs), '--json']);
    // settle: the copy's first make may redo some work (paths); not measured
    await make();
    const o = [];
    const b = [];
    for (let i = 0; i < 2; i++) {
      await touch();
      b.push((await timed(make))[0]);
      await touch();
      o.push((await timed(ours))[0]);
    }
    // Best of the runs: with two, a median is the slower one, and the first bare make can redo more.
    const om = Math.min(...o);
    const bm = Math.min(...b);
    return [{ name: `incremental build (touch fs/ext4/super.c), -j${jobs}`, ours_ms: om, baseline_ms: bm, goal: 'overhead ≤ 5 %', note: `runs: ours ${o.map((x) => x.toFixed(0)).join('/')} ms, make ${b.map((x) => x.toFixed(0)).join('/')} ms; ours = CLI start + state checks + make + artifact sha256` }];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function run() {
  configureLog({ json: true });
  const { tree, built, temp } = await findTree();
  try {
    const rows = await configRows(tree);
    if (built && process.env.OSBUILDER_BENCH_KERNEL_BUILD !== '0') rows.push(...(await buildRows(tree)));
    else rows.push({ name: 'incremental build', note: built ? 'skipped (OSBUILDER_BENCH_KERNEL_BUILD=0)' : 'skipped: no built tree (run the kernel integration tests first)' });
    return rows;
  } finally {
    if (temp) await rm(temp, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
