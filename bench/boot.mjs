#!/usr/bin/env node
// Boot time: our guest kernel + a busybox initrd with osbuilder's agent as
// /init, QEMU start -> agent ready (grpc.Health/Check = SERVING), against
// Debian's stock cloud kernel booting the same initrd, QEMU start -> /init
// running (the agent's "starting as init" line on ttyS0). Same QEMU, same
// accelerator (auto: TCG where KVM does not run guests), same memory and vCPUs.
// Then boot to container output, as `osbuilder boot -- echo` runs it (sandbox
// over 9p, the default busybox container), for that initrd and for an ext4
// image of the same tree, beside boot to agent ready of the same boot.
// aarch64 (TCG, qemu-system-aarch64 virt, -cpu max): our cross-built kernel +
// an arm64 busybox initrd with the aarch64 agent to agent ready, against
// Debian's arm64 cloud kernel booting the same initrd to /init (ttyAMA0).
// Needs `npm run build`. Usage: node bench/boot.mjs
//   OSBUILDER_BENCH_KERNEL=<bzImage>   our kernel (default: see ourKernel(); the one used is printed)
//   OSBUILDER_BENCH_KERNEL_AARCH64=<Image>  our aarch64 kernel (default: the caches' aarch64 kernel-default entry)
//   OSBUILDER_BENCH_RUNS=<n>            boots per side (default 3; the median is reported)
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, copyFile, chmod, rename } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planQemu, Vm, resolveAccel, findQemu, boot, defaultContainerRootfs } from '../dist/runtime/index.js';
import { buildImage } from '../dist/image-builder/index.js';
import { defaultAgentBinary } from '../dist/agent/index.js';
import { configureLog } from '../dist/core/log.js';
import { cacheRoot } from '../dist/core/cache.js';
import { mainIfRun } from './lib/rows.mjs';

const GOAL = '≤ 0.6×';
const CONTAINER_GOAL_MS = { initrd: 1500, image: 3000 };
const RUNS = Number(process.env.OSBUILDER_BENCH_RUNS ?? 3);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const TEST_CACHE = process.env.OSBUILDER_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'osbuilder-test');

async function exists(p) {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** Debian's cloud kernel for `debArch`, extracted from its .deb (amd64's shared with test/support/fixtures.ts's cache). */
export async function debianCloudKernel(debArch = 'amd64') {
  const dir = join(TEST_CACHE, debArch === 'amd64' ? 'debian-cloud-kernel' : `debian-cloud-kernel-${debArch}`);
  if (!(await exists(dir))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    await mkdir(join(tmp, 'dl'), { recursive: true });
    const meta = `linux-image-cloud-${debArch}${debArch === 'amd64' ? '' : `:${debArch}`}`;
    const dep = await execa('apt-cache', ['depends', meta]);
    const pkg = new RegExp(`Depends: (linux-image-[^\\s:]+-cloud-${debArch})`).exec(String(dep.stdout))?.[1];
    if (!pkg) throw new Error(`cannot resolve ${meta} (apt-get update first; another arch needs dpkg --add-architecture)`);
    await execa('apt-get', ['download', debArch === 'amd64' ? pkg : `${pkg}:${debArch}`], { cwd: join(tmp, 'dl') });
    const debs = await readdir(join(tmp, 'dl'));
    await execa('dpkg-deb', ['-x', join(tmp, 'dl', debs[0]), join(tmp, 'root')]);
    await rm(join(tmp, 'dl'), { recursive: true });
    await rename(tmp, dir);
  }
  const boot = join(dir, 'root/boot');
  const f = (await readdir(boot)).find((n) => n.startsWith('vmlinuz-'));
  return join(boot, f);
}

/** The newest kernel-default entry's boot image for `arch` in a build cache (by the entry's createdAt): vmlinuz (bzImage) or, for aarch64, vmlinux (Image). */
async function cachedKernel(root, arch = 'x86_64') {
  const stage = join(root, 'kernel-default');
  const prefix = arch === 'aarch64' ? 'vmlinux-' : 'vmlinuz-';
  let best;
  for (const key of await readdir(stage).catch(() => [])) {
    const entry = JSON.parse(await readFile(join(stage, key, 'entry.json'), 'utf8').catch(() => '{}'));
    if ((entry.inputs?.arch ?? 'x86_64') !== arch) continue;
    const f = Object.keys(entry.files ?? {}).find((n) => n.startsWith(prefix));
    if (f && (!best || entry.createdAt > best.createdAt)) best = { path: join(stage, key, f), createdAt: entry.createdAt };
  }
  return best?.path;
}

/**
 * Our guest kernel, the first of: --kernel / $OSBUILDER_BENCH_KERNEL; the build
 * cache's newest kernel-default entry ($OSBUILDER_CACHE_DIR, else
 * $XDG_CACHE_HOME/osbuilder: what `osbuilder build` made); ./out's install
 * (`bash scripts/build.sh`'s default prefix); the test suite's cache.
 */
export async function ourKernel() {
  if (process.env.OSBUILDER_BENCH_KERNEL) return { path: process.env.OSBUILDER_BENCH_KERNEL, from: 'OSBUILDER_BENCH_KERNEL' };
  const cache = await cachedKernel(cacheRoot());
  if (cache) return { path: cache, from: `build cache ${cacheRoot()}` };
  const out = join(REPO, 'out/usr/share/kata-containers/vmlinuz.container');
  if (await exists(out)) return { path: await realpath(out), from: `install ${join(REPO, 'out')}` };
  const test = await cachedKernel(join(TEST_CACHE, 'build-cache'));
  if (test) return { path: test, from: `test cache ${TEST_CACHE}` };
  throw new Error(`no guest kernel: none in ${cacheRoot()} nor ${out}; run bash scripts/build.sh, or pass --kernel <bzImage> (OSBUILDER_BENCH_KERNEL)`);
}

/** busybox + the agent (for `arch`) as /init and /sbin/init, as a newc cpio, gzip (Kata's format); and its tree. */
export async function agentInitrd(work, arch = 'x86_64') {
  const root = join(work, `root-${arch}`);
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'usr/bin', 'root']) await mkdir(join(root, d), { recursive: true });
  const busybox = arch === 'x86_64' ? '/bin/busybox' : join((await defaultContainerRootfs({ arch })).path, 'bin/busybox');
  await copyFile(busybox, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'cat', 'uname']) await symlink('busybox', join(root, 'bin', a));
  await copyFile((await defaultAgentBinary({ arch })).path, join(root, 'usr/bin/kata-agent'));
  await chmod(join(root, 'usr/bin/kata-agent'), 0o755);
  await symlink('usr/bin/kata-agent', join(root, 'init'));
  await symlink('../init', join(root, 'sbin/init'));
  const out = join(work, `agent-${arch}.initrd`);
  await execa('sh', ['-c', 'cd "$1" && find . | LC_ALL=C sort | cpio -H newc -o --quiet | gzip -9 > "$2"', 'sh', root, out]);
  return { initrd: out, root };
}

/**
 * One `osbuilder boot -- echo container-output`: ms from the call to the
 * container's first stdout byte, and the same boot's QEMU start -> agent ready.
 */
async function containerBoot({ accel, kernel, root }) {
  let first = 0;
  const t0 = performance.now();
  const r = await boot({
    overrides: { kernel, ...root, memory: 512 },
    accel,
    timeoutSec: 180,
    container: { command: ['echo', 'container-output'], io: { onStdout: () => (first ||= performance.now()) } },
  });
  if (r.container?.exitCode !== 0 || !first) throw new Error(`the container did not run: ${JSON.stringify(r.container)}`);
  return { outputMs: first - t0, readyMs: r.timings.qemuStartToAgentReadyMs };
}

async function containerRows({ accel, reason, kernel, initrd, image }) {
  const rows = [];
  for (const [kind, root] of [
    ['initrd', { initrd }],
    ['image', { image }],
  ]) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await containerBoot({ accel, kernel, root }));
    const out = median(runs.map((x) => x.outputMs));
    const ready = median(runs.map((x) => x.readyMs));
    rows.push({
      name: `boot to container output (${kind}) vs to agent ready, ${accel}`,
      ours_ms: out,
      baseline_ms: ready,
      goal: `≤ ${CONTAINER_GOAL_MS[kind] / 1000} s`,
      note: `median of ${RUNS}; accel ${accel} (${reason}); output ${runs.map((x) => Math.round(x.outputMs)).join('/')} ms; CreateSandbox (9p) + CreateContainer + StartContainer + ReadStdout; our kernel, 512 MiB`,
    });
  }
  return rows;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function bootOnce({ arch = 'x86_64', qemu, accel, kernel, initrd, console, work, i, until }) {
  const runDir = await mkdtemp(join(work, `vm-${i}-`));
  const channel = { kind: 'serial', socket: join(runDir, 'agent.sock') };
  const plan = planQemu({
    arch,
    qemu,
    machineType: arch === 'aarch64' ? 'virt' : 'q35',
    accel,
    kernel,
    root: { kind: 'initrd', path: initrd },
    vcpus: 1,
    memoryMiB: 512,
    channel,
    qmpSocket: join(runDir, 'qmp.sock'),
    console,
    entropySource: '/dev/urandom',
    name: `osbuilder-bench-${process.pid}-${i}`,
    debug: false,
    agentDebug: false,
  });
  const vm = Vm.start({ plan, channel });
  try {
    const deadline = vm.startedAt + 180_000;
    if (until === 'agent') return (await vm.waitForAgent(deadline)).readyMs;
    return await vm.waitForConsole(/kata-agent: .* starting as init/, deadline);
  } finally {
    await vm.kill();
  }
}

/** Our aarch64 kernel (arch/arm64/boot/Image): $OSBUILDER_BENCH_KERNEL_AARCH64, else the build cache's, else the test suite's. */
async function ourAarch64Kernel() {
  if (process.env.OSBUILDER_BENCH_KERNEL_AARCH64) return { path: process.env.OSBUILDER_BENCH_KERNEL_AARCH64, from: 'OSBUILDER_BENCH_KERNEL_AARCH64' };
  for (const [root, from] of [
    [cacheRoot(), `build cache ${cacheRoot()}`],
    [join(TEST_CACHE, 'build-cache'), `test cache ${TEST_CACHE}`],
  ]) {
    const path = await cachedKernel(root, 'aarch64');
    if (path) return { path, from };
  }
  return undefined;
}

/** aarch64 under TCG: our kernel to agent ready vs Debian's arm64 cloud kernel to /init, the same arm64 initrd, alternating. */
export async function aarch64Rows(work) {
  const kernel = await ourAarch64Kernel();
  if (!kernel) {
    process.stderr.write('bench: boot: no aarch64 row: no aarch64 kernel (osbuilder build --arch aarch64 --kernel, or OSBUILDER_BENCH_KERNEL_AARCH64)\n');
    return [];
  }
  const qemu = (await findQemu('qemu-system-aarch64')).path;
  if (!qemu) throw new Error('qemu-system-aarch64 is not installed (qemu-system-arm)');
  const [debian, { initrd }] = [await debianCloudKernel('arm64'), await agentInitrd(work, 'aarch64')];
  const common = { arch: 'aarch64', qemu, accel: 'tcg', initrd, work };
  const o = [];
  const d = [];
  for (let i = 0; i < RUNS; i++) {
    o.push(await bootOnce({ ...common, kernel: kernel.path, console: 'hvc', i: `ao${i}`, until: 'agent' }));
    d.push(await bootOnce({ ...common, kernel: debian, console: 'serial', i: `ad${i}`, until: 'init' }));
  }
  return [
    {
      name: 'aarch64: boot to agent ready (ours) vs to /init (Debian arm64 cloud kernel), tcg',
      ours_ms: median(o),
      baseline_ms: median(d),
      goal: GOAL,
      note: `median of ${RUNS}; qemu-system-aarch64 virt, -cpu max, TCG; ours ${o.map(Math.round).join('/')} ms, debian ${d.map(Math.round).join('/')} ms; same arm64 busybox+agent initrd, 512 MiB, 1 vCPU; our kernel from ${kernel.from}`,
    },
  ];
}

export async function run() {
  configureLog({ json: true });
  const work = await mkdtemp(join(tmpdir(), 'osb-bench-boot-'));
  try {
    const qemu = (await findQemu('qemu-system-x86_64')).path;
    if (!qemu) throw new Error('qemu-system-x86_64 is not installed');
    const { accel, reason } = await resolveAccel('auto', qemu);
    const kernel = await ourKernel();
    process.stderr.write(`bench: boot: our kernel ${kernel.path} (from ${kernel.from})\n`);
    const ours = kernel.path;
    const [debian, { initrd, root }] = [await debianCloudKernel(), await agentInitrd(work)];
    const image = join(work, 'agent.img');
    await buildImage({ rootfs: root, output: image });
    const o = [];
    const d = [];
    for (let i = 0; i < RUNS; i++) {
      o.push(await bootOnce({ qemu, accel, kernel: ours, initrd, console: 'hvc', work, i: `o${i}`, until: 'agent' }));
      d.push(await bootOnce({ qemu, accel, kernel: debian, initrd, console: 'serial', work, i: `d${i}`, until: 'init' }));
    }
    const om = median(o);
    const dm = median(d);
    return [
      {
        name: `boot to agent ready (ours) vs to /init (Debian cloud kernel), ${accel}`,
        ours_ms: om,
        baseline_ms: dm,
        goal: GOAL,
        note: `median of ${RUNS}; accel ${accel} (${reason}); ours ${o.map(Math.round).join('/')} ms, debian ${d.map(Math.round).join('/')} ms; same busybox+agent initrd, 512 MiB, 1 vCPU; our kernel from ${kernel.from}`,
      },
      ...(await containerRows({ accel, reason, kernel: ours, initrd, image })),
      ...(await aarch64Rows(work)),
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await mainIfRun(import.meta.url, run);
