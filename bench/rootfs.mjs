#!/usr/bin/env node
// Debian rootfs: `osbuilder rootfs debian` (builder container, agent, units,
// trim, metadata, checks) against bare `mmdebstrap` of the same package set on
// the host.
//   builder image built: no builder image yet (the base image, like a pulled
//     debian:bookworm, is present), empty package cache; one run.
//   empty package cache: builder image cached, <cache>/packages empty.
//   warm package cache + one extra package: the cache filled by the build
//     before, the package set plus EXTRA (its new dependencies are downloaded).
// The last two alternate ours and bare run by run (RUNS times each) and report
// medians. Needs root, Docker and `npm run build`.
// Usage: node bench/rootfs.mjs   (OSBUILDER_BENCH_RUNS=3, OSBUILDER_BENCH_ROOTFS=package-cache for those rows only)
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRootfs, ensureDebianBase, resolveRootfsOptions } from '../dist/rootfs-builder/index.js';
import { defaultAgentBinary } from '../dist/agent/index.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';
import { median, timed } from './lib/stats.mjs';

const MIRROR = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';
const RUNS = Number(process.env.OSBUILDER_BENCH_RUNS ?? 3);
const EXTRA = 'strace';
const NOISE = '2 cores shared with other builds: network- and load-bound, it varies run to run';

async function removeDebianBuilders() {
  const r = await execa('docker', ['images', '-q', '--filter', 'label=org.osbuilder.role=rootfs-builder', '--filter', 'label=org.osbuilder.distro=debian'], {
    reject: false,
  });
  const ids = [...new Set(String(r.stdout).split('\n').filter(Boolean))];
  if (ids.length) await execa('docker', ['rmi', '-f', ...ids], { reject: false });
}

function runners(work, agent) {
  const packages = resolveRootfsOptions({ distro: 'debian', output: join(work, 'x') }).packages;
  let n = 0;
  const bare = (extra = []) =>
    timed(() =>
      execa('mmdebstrap', [
        '--mode=root',
        '--variant=minbase',
        `--include=${[...packages, ...extra].join(',')}`,
        'bookworm',
        join(work, `bare-${n++}`),
        MIRROR,
      ]),
    );
  // The package cache lives in the build cache: a fresh one is an empty package cache.
  const ours = (cacheDir, extra = []) =>
    timed(async () => {
      process.env.OSBUILDER_CACHE_DIR = cacheDir;
      await buildRootfs({
        distro: 'debian',
        output: join(work, `ours-${n++}`),
        bootstrapBase: true,
        mirror: MIRROR,
        agent,
        ...(extra.length ? { extraPackages: extra } : {}),
      });
    });
  return { packages, bare, ours };
}

/** Alternating runs: bare, ours with an empty package cache, bare + EXTRA, ours + EXTRA with that cache warm. */
async function packageCacheRows(work, agent) {
  const { packages, bare, ours } = runners(work, agent);
  const t = { bareCold: [], cold: [], bareExtra: [], warm: [] };
  for (let i = 0; i < RUNS; i++) {
    const cache = await mkdtemp(join(work, 'cache-'));
    t.bareCold.push(await bare());
    t.cold.push(await ours(cache));
    t.bareExtra.push(await bare([EXTRA]));
    t.warm.push(await ours(cache, [EXTRA]));
    await rm(cache, { recursive: true, force: true });
  }
  const runs = (xs) => xs.map((x) => (x / 1000).toFixed(1)).join(' ');
  return [
    {
      name: 'debian bookworm systemd, empty package cache (builder image cached)',
      ours_ms: median(t.cold),
      baseline_ms: median(t.bareCold),
      goal: '≤ 1.1×',
      note: `medians of ${RUNS} alternating runs (s: ours ${runs(t.cold)}; bare ${runs(t.bareCold)}); packages: ${packages.join(' ')}; ${NOISE}`,
    },
    {
      name: `same + ${EXTRA}, warm package cache (the build before's)`,
      ours_ms: median(t.warm),
      baseline_ms: median(t.bareExtra),
      goal: '≤ 0.6×',
      note: `medians of ${RUNS} alternating runs (s: ours ${runs(t.warm)}; bare ${runs(t.bareExtra)}); baseline: bare mmdebstrap of the same set; ${NOISE}`,
    },
  ];
}

export async function run() {
  configureLog({ json: true });
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-rootfs-'));
  const saved = process.env.OSBUILDER_CACHE_DIR;
  try {
    await ensureDebianBase({ mirror: MIRROR });
    // Built (or found) in the usual build cache, before the runs point OSBUILDER_CACHE_DIR elsewhere.
    const agent = (await defaultAgentBinary()).path;
    const rows = [];
    if (process.env.OSBUILDER_BENCH_ROOTFS !== 'package-cache') {
      const { packages, bare, ours } = runners(work, agent);
      await removeDebianBuilders();
      const base = await bare();
      const cold = await ours(await mkdtemp(join(work, 'cache-')));
      rows.push({
        name: 'debian bookworm systemd, cold (builder image built, empty package cache)',
        ours_ms: cold,
        baseline_ms: base,
        goal: '≤ 1.3×',
        note: `one run; baseline: bare mmdebstrap; packages: ${packages.join(' ')}`,
      });
    }
    rows.push(...(await packageCacheRows(work, agent)));
    return rows;
  } finally {
    if (saved === undefined) delete process.env.OSBUILDER_CACHE_DIR;
    else process.env.OSBUILDER_CACHE_DIR = saved;
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
