#!/usr/bin/env node
// Debian rootfs: `osbuilder rootfs debian` (builder container, agent, units,
// trim, metadata, checks) against bare `mmdebstrap` of the same package set on
// the host. "cold" = no builder image yet (the base image, like a pulled
// debian:bookworm, is present); "warm" = builder image cached.
// Needs root, Docker and `npm run build`. Usage: node bench/rootfs.mjs
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRootfs, ensureDebianBase, resolveRootfsOptions } from '../dist/rootfs-builder/index.js';
import { defaultAgentBinary } from '../dist/agent/index.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';

const GOAL = '≤ 1.3×';
const MIRROR = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function removeDebianBuilders() {
  const r = await execa('docker', ['images', '-q', '--filter', 'label=org.osbuilder.role=rootfs-builder', '--filter', 'label=org.osbuilder.distro=debian'], { reject: false });
  const ids = [...new Set(String(r.stdout).split('\n').filter(Boolean))];
  if (ids.length) await execa('docker', ['rmi', '-f', ...ids], { reject: false });
}

export async function run() {
  configureLog({ json: true });
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-rootfs-'));
  try {
    await ensureDebianBase({ mirror: MIRROR });
    await defaultAgentBinary();
    const packages = resolveRootfsOptions({ distro: 'debian', output: join(work, 'x') }).packages;
    const bare = (i) =>
      timed(() => execa('mmdebstrap', ['--mode=root', '--variant=minbase', `--include=${packages.join(',')}`, 'bookworm', join(work, `bare-${i}`), MIRROR]));
    const ours = (name) => timed(() => buildRootfs({ distro: 'debian', output: join(work, name), bootstrapBase: true, mirror: MIRROR }));

    await removeDebianBuilders();
    const base1 = await bare(1);
    const cold = await ours('cold');
    const base2 = await bare(2);
    const warm = await ours('warm');
    const note = `packages: ${packages.join(' ')}`;
    return [
      { name: 'debian bookworm systemd, cold (builder image built)', ours_ms: cold, baseline_ms: base1, goal: GOAL, note: `baseline: bare mmdebstrap; ${note}` },
      { name: 'debian bookworm systemd, warm (builder image cached)', ours_ms: warm, baseline_ms: base2, goal: GOAL, note: 'same package set' },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
