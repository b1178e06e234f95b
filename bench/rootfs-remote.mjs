#!/usr/bin/env node
// Rootfs on a remote engine vs the local one: the same `osbuilder rootfs`
// (remote: the tree made in a volume on the engine's side, streamed back as a
// tar; local: bind-mounted) with DOCKER_HOST pointing at a second dockerd in its own container
// (its own data-root: no path shared with us), against the local dockerd.
// Builder images and both package caches are warm (one build each first);
// then $OSBUILDER_BENCH_RUNS (default 3) alternating pairs, medians. The
// build's own step lines split each side's time: the bootstrap step (the
// engine running mmdebstrap: its speed, not ours) and the rest (for the
// remote: the tar stream, the package-cache listings and the volume).
// Needs root, Docker and `npm run build`.
// Usage: node bench/rootfs-remote.mjs
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRootfs, ensureDebianBase } from '../dist/rootfs-builder/index.js';
import { configureLog } from '../dist/core/log.js';
import { mainIfRun } from './lib/rows.mjs';
import { median } from './lib/stats.mjs';
import { loadImage, startRemoteEngine } from '../test/support/remote-engine.mjs';

const GOAL = '≤ 1.15×';
const MIRROR = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';
const RUNS = Math.max(1, Number(process.env.OSBUILDER_BENCH_RUNS ?? 3) || 3);

/** Runs `fn` with DOCKER_HOST = `host` (unset: the local engine); its time and the ms of its steps whose title matches `bootstrap`. */
async function onEngine(host, bootstrap, fn) {
  const saved = process.env.DOCKER_HOST;
  if (host) process.env.DOCKER_HOST = host;
  else delete process.env.DOCKER_HOST;
  // The step lines (`✓ <title> (<elapsed>)`) on stderr, read for the split and kept off the table.
  const write = process.stderr.write.bind(process.stderr);
  let boot = 0;
  process.stderr.write = (chunk, ...rest) => {
    for (const m of String(chunk).matchAll(/^\s*✓ (.+) \((\d+(?:\.\d+)?)(ms|s)\)$/gm))
      if (bootstrap.test(m[1])) boot += Number(m[2]) * (m[3] === 's' ? 1000 : 1);
    const done = rest.at(-1);
    if (typeof done === 'function') done();
    return true;
  };
  try {
    const t = performance.now();
    await fn();
    return { total: performance.now() - t, boot };
  } finally {
    process.stderr.write = write;
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
  }
}

const s = (ms) => (ms / 1000).toFixed(1);

export async function run() {
  configureLog({ json: false });
  process.env.SOURCE_DATE_EPOCH ??= '1700000000';
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-remote-'));
  const base = await ensureDebianBase({ mirror: MIRROR });
  const remote = await startRemoteEngine('bench');
  try {
    await loadImage(base.ref, remote.host);
    let n = 0;
    const rows = [];
    for (const distro of ['busybox', 'debian']) {
      const bootstrap = distro === 'debian' ? /^mmdebstrap / : /^(install busybox|list applets|busybox version)/;
      const build = (host) =>
        onEngine(host, bootstrap, () => buildRootfs({ distro, output: join(work, `r${n++}`), bootstrapBase: true, mirror: MIRROR, agent: '/bin/busybox' }));
      await build(undefined);
      await build(remote.host);
      const [far, local] = [[], []];
      for (let i = 0; i < RUNS; i++) {
        local.push(await build(undefined));
        far.push(await build(remote.host));
      }
      const med = (xs, f) => median(xs.map(f));
      const rest = (r) => r.total - r.boot;
      const name = distro === 'debian' ? 'debian bookworm systemd' : 'busybox';
      rows.push({
        name: `${name}, remote engine (no shared path) vs local engine, builder images and package caches warm`,
        ours_ms: med(far, (r) => r.total),
        baseline_ms: med(local, (r) => r.total),
        goal: GOAL,
        note:
          `medians of ${RUNS} alternating pairs (s): remote ${far.map((r) => s(r.total)).join('/')}, local ${local.map((r) => s(r.total)).join('/')}; ` +
          `bootstrap step (the engine's own speed) remote ${s(med(far, (r) => r.boot))} vs local ${s(med(local, (r) => r.boot))}, ` +
          `the rest remote ${s(med(far, rest))} vs local ${s(med(local, rest))}; remote: dockerd in a container on this host (every capability but SYS_RESOURCE), its data-root on its own volume; the tree comes back as a tar stream, the local engine's is bind-mounted`,
      });
    }
    return rows;
  } finally {
    await remote.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
