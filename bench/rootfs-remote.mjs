#!/usr/bin/env node
// Rootfs on a remote engine vs the local one: the same `osbuilder rootfs`
// (remote: the tree made in a volume on the engine's side, streamed back as a
// tar; local: bind-mounted) with DOCKER_HOST pointing at a second dockerd in its own container
// (its own data-root: no path shared with us), against the local dockerd.
// Builder images are warm on both (one build each first); one timed build
// each, alternating. Needs root, Docker and `npm run build`.
// Usage: node bench/rootfs-remote.mjs
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRootfs, ensureDebianBase } from '../dist/rootfs-builder/index.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';
import { loadImage, startRemoteEngine } from '../test/support/remote-engine.mjs';

const GOAL = '≤ 1.15×';
const MIRROR = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';

async function onEngine(host, fn) {
  const saved = process.env.DOCKER_HOST;
  if (host) process.env.DOCKER_HOST = host;
  else delete process.env.DOCKER_HOST;
  try {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  } finally {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  }
}

export async function run() {
  configureLog({ json: true });
  process.env.SOURCE_DATE_EPOCH ??= '1700000000';
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-remote-'));
  const base = await ensureDebianBase({ mirror: MIRROR });
  const remote = await startRemoteEngine('bench');
  try {
    await loadImage(base.ref, remote.host);
    let n = 0;
    const build = (host, distro) =>
      onEngine(host, () => buildRootfs({ distro, output: join(work, `r${n++}`), bootstrapBase: true, mirror: MIRROR, agent: '/bin/busybox' }));
    const rows = [];
    for (const distro of ['busybox', 'debian']) {
      await build(undefined, distro);
      await build(remote.host, distro);
      const local = await build(undefined, distro);
      const far = await build(remote.host, distro);
      const name = distro === 'debian' ? 'debian bookworm systemd' : 'busybox';
      rows.push({
        name: `${name}, remote engine (no shared path) vs local engine, builder images warm`,
        ours_ms: far,
        baseline_ms: local,
        goal: GOAL,
        note: 'remote: dockerd in a container on this host (not --privileged: every capability but SYS_RESOURCE), overlay2 on its own volume; both stream the tree back as a tar',
      });
    }
    return rows;
  } finally {
    await remote.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
