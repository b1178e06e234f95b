/**
 * `osbuilder build` end to end: the default build (debian image with systemd,
 * busybox initrd with the agent as init, the kernel) on a clean prefix, boot
 * tests under QEMU, Kata's install tree, booting from the installed
 * configuration, a warm rebuild from the cache, --verify-reproducible, and
 * faults: SIGTERM while a rootfs container runs, while a boot test's QEMU
 * runs and just after a boot test passed (each one error[INTERRUPTED]), a
 * corrupt cache entry, a full disk under the prefix.
 * The cache is fresh for this file; only the kernel entry is seeded from the
 * suite's kernel (test/support/kernel.ts), so the kernel compiles once.
 */
import { execa, type ResultPromise } from 'execa';
import { cp, lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, repoRoot, runCli, type CliErrorJson } from '../support/cli.js';
import type { BuildResult } from '../../pipeline/build.js';
import type { ReproducibleResult } from '../../pipeline/reproducible.js';
import type { BootResult } from '../../runtime/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { guestKernel, KERNEL_SDE, seedKernelEntry, type GuestKernel } from '../support/kernel.js';
import { descendants, qemuNamed, stillThere } from '../support/procs.js';
import { buildContainers } from '../support/rootfs.js';
import { sha256File } from '../../core/hash.js';

/** The suite's kernel was built with this epoch: the seeded entry's key holds it. */
const SDE = KERNEL_SDE;
let work: string;
let cacheDir: string;
let kernel: GuestKernel;
let env: Record<string, string>;
const prefix = () => join(work, 'prefix');
const share = (p = prefix()) => join(p, 'usr/share/kata-containers');

/** `osbuilder <args> --json`; `T` is what it prints (a failing run: CliErrorJson). */
async function osb<T = BuildResult>(args: string[], extraEnv: Record<string, string> = {}) {
  return runCli<T>([...args, '--json'], { env: { ...env, ...extraEnv }, timeout: 40 * 60_000 });
}

/** Regular files and links under `root`, as "path" or "path -> target". */
async function listing(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      const rel = p.slice(root.length + 1);
      if (st.isSymbolicLink()) out.push(`${rel} -> ${await readlink(p)}`);
      else if (st.isDirectory()) await walk(p);
      else out.push(rel);
    }
  }
  await walk(root);
  return out;
}

/** The boot-test VMs of the build run by `pid` (osbuilder names them osbuilder-vm-<pid>-…). */
const bootVmsOf = (pid: number) => qemuNamed(`osbuilder-vm-${pid}-`, { prefix: true });

interface Killed {
  exitCode: number | undefined;
  stderr: string;
  /** Taken the moment the exit was observed: what the build left of its own. */
  left: { containers: string[]; processes: string[]; work: string[] };
}

/**
 * Starts the CLI, sends SIGTERM once `ready(pid, stderr so far)` holds (checked
 * on each progress line and at least every 250 ms), and at the moment its exit
 * is observed lists what is left of what it started: its labelled containers,
 * and every process that was its descendant when the signal went out (a zombie
 * counts) or that carries its VM name.
 */
async function killWhen(
  args: string[],
  ready: (pid: number, stderr: string) => Promise<boolean> | boolean,
  extraEnv: Record<string, string> = {},
): Promise<Killed> {
  const child: ResultPromise = execa('node', [cliPath, ...args], { reject: false, cwd: repoRoot, env: { ...env, ...extraEnv }, timeout: 30 * 60_000 });
  const pid = child.pid!;
  let exited = false;
  void child.finally(() => (exited = true));
  let progress = '';
  let wake = () => {};
  child.stderr!.on('data', (d: Buffer) => {
    progress += String(d);
    wake();
  });
  while (!exited && !(await ready(pid, progress))) await new Promise<void>((r) => ((wake = r), setTimeout(r, 250)));
  expect(exited, 'the build ended before the stage under test started').toBe(false);
  const started = await descendants(pid);
  child.kill('SIGTERM');
  const r = await child;
  const processes = [...(await stillThere(started)), ...(await bootVmsOf(pid)).map((p) => `${p.pid} ${p.comm} ${p.state}`)];
  const left = { containers: await buildContainers(pid), processes, work: await readdir(join(cacheDir, 'work')).catch(() => []) };
  return { exitCode: r.exitCode, stderr: String(r.stderr), left };
}

/** The error lines of an interrupted run: exactly one INTERRUPTED, whatever the stage was doing. */
function expectOneInterrupted(stderr: string): void {
  expect(
    stderr.split('\n').filter((l) => l.startsWith('error[')),
    stderr,
  ).toEqual(['error[INTERRUPTED]: interrupted by SIGTERM']);
  expect(stderr).not.toMatch(/INTERNAL|COMMAND_FAILED/);
}

beforeAll(async () => {
  work = await makeTempDir('osb-build-');
  cacheDir = join(work, 'cache');
  kernel = await guestKernel();
  await seedKernelEntry(cacheDir);
  env = { OSBUILDER_CACHE_DIR: cacheDir, SOURCE_DATE_EPOCH: SDE };
});

afterAll(async () => {
  await execa('rm', ['-rf', work]);
});

describe('the default build', () => {
  it('builds, boot-tests and installs debian image + busybox initrd + kernel into a clean prefix', async () => {
    const r = await osb(['build', '--prefix', prefix(), '--jobs', '2', '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    const result = r.json!;
    expect(result.install).toBe('installed');
    expect(result.rows.map((x) => [x.artifact, x.cached])).toEqual([
      ['kata-debian-bookworm.image', false],
      ['kata-busybox-bookworm.initrd', false],
      [`vmlinuz-${kernel.version}-${kernel.configVersion}`, true], // seeded from the suite's kernel
    ]);
    expect(result.bootTests).toHaveLength(2);
    for (const b of result.bootTests) expect(b).toMatchObject({ passed: true, cached: false });
    expect(result.bootTests.map((b) => b.osRelease).sort()).toEqual(['BusyBox 1.35.0 (osbuilder guest)', 'Debian GNU/Linux 12 (bookworm)']);
    // Each artifact ran a container through Kata's API: its own rootfs, pid 1, the limits, an exec, status 3.
    const kata = JSON.parse(await readFile(join(repoRoot, 'test/fixtures/kata-protocol.json'), 'utf8')).services as Record<string, string[]>;
    const kataPaths = Object.entries(kata).flatMap(([svc, ms]) => ms.map((m) => `/${svc}/${m.split('(')[0]}`));
    for (const b of result.bootTests) {
      expect(b.channel).toBe('serial');
      expect(b.container).toMatchObject({
        initPid: 1,
        hostname: 'osb-boot-test',
        memoryMax: 268435456,
        pidsMax: 128,
        execStatus: 0,
        initStatus: 3,
        containerOs: expect.stringMatching(/^osbuilder busybox container/),
        guestOs: b.osRelease,
      });
      expect(b.rpcs).toEqual(
        expect.arrayContaining([
          '/grpc.AgentService/CreateSandbox',
          '/grpc.AgentService/CreateContainer',
          '/grpc.AgentService/ExecProcess',
          '/grpc.AgentService/DestroySandbox',
        ]),
      );
      for (const p of b.rpcs) expect(kataPaths).toContain(p);
    }
  });

  it("lays the tree out as Kata's release does, with SHA256SUMS and a manifest", async () => {
    const v = `${kernel.version}-${kernel.configVersion}`;
    expect(await listing(prefix())).toEqual([
      'usr/share/defaults/kata-containers/configuration-qemu.toml',
      'usr/share/kata-containers/SHA256SUMS',
      `usr/share/kata-containers/config-${v}`,
      'usr/share/kata-containers/kata-busybox-bookworm.initrd',
      'usr/share/kata-containers/kata-containers-initrd.img -> kata-busybox-bookworm.initrd',
      'usr/share/kata-containers/kata-containers.img -> kata-debian-bookworm.image',
      'usr/share/kata-containers/kata-debian-bookworm.image',
      'usr/share/kata-containers/manifest.json',
      `usr/share/kata-containers/vmlinux-${v}`,
      `usr/share/kata-containers/vmlinux.container -> vmlinux-${v}`,
      `usr/share/kata-containers/vmlinuz-${v}`,
      `usr/share/kata-containers/vmlinuz.container -> vmlinuz-${v}`,
    ]);
    const sums = await execa('sha256sum', ['-c', 'usr/share/kata-containers/SHA256SUMS'], { cwd: prefix(), reject: false });
    expect(sums.exitCode, String(sums.stdout) + String(sums.stderr)).toBe(0);
    expect(String(sums.stdout).split('\n')).toHaveLength(7);
    expect(await sha256File(join(share(), `vmlinuz-${v}`))).toBe(await sha256File(kernel.bzImage));

    const m = JSON.parse(await readFile(join(share(), 'manifest.json'), 'utf8'));
    expect(m.sourceDateEpoch).toBe(Number(SDE));
    expect(m.bootTested).toBe(true);
    const image = m.rootfs.find((x: { role: string }) => x.role === 'image');
    expect(image).toMatchObject({
      file: 'kata-debian-bookworm.image',
      distro: 'debian',
      initMode: 'systemd',
      sha256: await sha256File(join(share(), 'kata-debian-bookworm.image')),
    });
    expect(image.packages).toEqual(expect.arrayContaining([expect.stringMatching(/^systemd=252\./)]));
    expect(m.rootfs.find((x: { role: string }) => x.role === 'initrd')).toMatchObject({ distro: 'busybox', initMode: 'agent-init' });
    expect(m.kernels).toEqual([
      expect.objectContaining({
        variant: 'default',
        version: kernel.version,
        release: kernel.release,
        configVersion: kernel.configVersion,
        configSha256: await sha256File(kernel.config),
      }),
    ]);
    expect(m.bootTests).toHaveLength(2);

    const toml = await readFile(join(prefix(), 'usr/share/defaults/kata-containers/configuration-qemu.toml'), 'utf8');
    expect(toml).toContain(`kernel = "${share()}/vmlinuz.container"`);
    expect(toml).toContain(`image = "${share()}/kata-containers.img"`);
    expect(toml).toContain(`# initrd = "${share()}/kata-containers-initrd.img"`);
  });

  it('boots from the installed configuration-qemu.toml', async () => {
    const cfg = join(prefix(), 'usr/share/defaults/kata-containers/configuration-qemu.toml');
    const r = await runCli(['boot', '--config', cfg, '--timeout', '600', '--', 'uname', '-r'], { timeout: 15 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(kernel.release);
  });

  it('a second build with no input change is a cache hit, boots nothing and leaves the install alone', async () => {
    const before = await sha256File(join(share(), 'manifest.json'));
    const r = await osb(['build', '--prefix', prefix()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.install).toBe('unchanged');
    expect(r.json!.rows.every((x) => x.cached)).toBe(true);
    expect(r.json!.bootTests.every((b) => b.cached && b.passed)).toBe(true);
    expect(r.json!.notes).toContain('boot tests skipped: these exact artifacts already passed them');
    expect(await sha256File(join(share(), 'manifest.json'))).toBe(before);
  });

  it('keeps an existing different install unless -f', async () => {
    const before = await listing(prefix());
    const r = await osb<CliErrorJson>(['build', 'busybox', '--initrd', '--prefix', prefix()], { SOURCE_DATE_EPOCH: '1700000001' });
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('OUTPUT_EXISTS');
    expect(await listing(prefix())).toEqual(before);
  });
});

describe('the GPU build (-g nvidia)', () => {
  const gpuPrefix = () => join(work, 'prefix-gpu');

  it('boot-tests the GPU kernel with the initrd: a 4 GiB-BAR device hot-plugged, the probe module built against its kernel-devel and loaded; the manifest records both', async () => {
    const gpu = await guestKernel('nvidia');
    await seedKernelEntry(cacheDir, 'nvidia');
    const r = await osb(['build', 'busybox', '--initrd', '--kernel', '-g', 'nvidia', '--prefix', gpuPrefix(), '--jobs', '2', '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    const byKernel = Object.fromEntries(r.json!.bootTests.map((b) => [b.kernel, b]));
    const gpuBoot = byKernel[`vmlinuz-${gpu.version}-${gpu.configVersion}-nvidia-gpu`]!;
    expect(gpuBoot, Object.keys(byKernel).join(', ')).toBeDefined();
    expect(gpuBoot.gpu).toEqual({
      hotplug: {
        port: 'rp0',
        address: expect.stringMatching(/^0000:/),
        barStart: expect.stringMatching(/^0x[0-9a-f]+$/),
        barBytes: 4 * 2 ** 30,
        removed: true,
      },
      module: { name: 'osb_gpu_probe', token: expect.stringMatching(/^[0-9a-f]{12}$/) },
    });
    expect(BigInt((gpuBoot.gpu!.hotplug as { barStart: string }).barStart)).toBeGreaterThanOrEqual(4n * 2n ** 30n);
    expect(gpuBoot.rpcs).toContain('/grpc.AgentService/CreateSandbox');
    expect(byKernel[`vmlinuz-${kernel.version}-${kernel.configVersion}`]!.gpu).toBeUndefined();
    const manifest = JSON.parse(await readFile(join(share(gpuPrefix()), 'manifest.json'), 'utf8'));
    expect(manifest.bootTests.find((b: { kernel: string }) => b.kernel === gpuBoot.kernel).gpu).toEqual(gpuBoot.gpu);
    expect(await readdir(join(share(gpuPrefix()), 'kernel-devel'))).toContain(`linux-headers-${gpu.release}.tar.gz`);
  });
});

describe('an aarch64 build (--arch aarch64) on this x86_64 host', () => {
  const armPrefix = () => join(work, 'prefix-aarch64');
  const armToml = () => join(armPrefix(), 'usr/share/defaults/kata-containers/configuration-qemu.toml');

  it("boot-tests the cross-built kernel with the busybox initrd under qemu-system-aarch64 and installs Kata's arm64 layout and configuration", async () => {
    const arm = await guestKernel('default', 'aarch64');
    await seedKernelEntry(cacheDir, 'default', 'aarch64');
    const r = await osb(['build', 'busybox', '--initrd', '--kernel', '--arch', 'aarch64', '--prefix', armPrefix(), '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    const v = `${arm.version}-${arm.configVersion}`;
    expect(r.json!.rows.map((x) => [x.artifact, x.cached])).toEqual([
      ['kata-busybox-bookworm.initrd', false],
      [`vmlinuz-${v}`, true],
    ]);
    expect(r.json!.bootTests).toEqual([expect.objectContaining({ passed: true, osRelease: 'BusyBox 1.35.0 (osbuilder guest)' })]);
    expect(r.json!.bootTests[0]!.container).toMatchObject({ initPid: 1, memoryMax: 268435456, pidsMax: 128, execStatus: 0, initStatus: 3 });
    expect(await listing(armPrefix())).toEqual([
      'usr/share/defaults/kata-containers/configuration-qemu.toml',
      'usr/share/kata-containers/SHA256SUMS',
      `usr/share/kata-containers/config-${v}`,
      'usr/share/kata-containers/kata-busybox-bookworm.initrd',
      'usr/share/kata-containers/kata-containers-initrd.img -> kata-busybox-bookworm.initrd',
      'usr/share/kata-containers/manifest.json',
      `usr/share/kata-containers/vmlinux-${v}`,
      `usr/share/kata-containers/vmlinux.container -> vmlinux-${v}`,
      `usr/share/kata-containers/vmlinuz-${v}`,
      `usr/share/kata-containers/vmlinuz.container -> vmlinuz-${v}`,
    ]);
    // build-kernel.sh's arm64 names: vmlinux is arch/arm64/boot/Image, vmlinuz its Image.gz.
    expect(await sha256File(join(armPrefix(), `usr/share/kata-containers/vmlinux-${v}`))).toBe(await sha256File(arm.bzImage));
    const gz = await readFile(join(armPrefix(), `usr/share/kata-containers/vmlinuz-${v}`));
    expect([gz[0], gz[1]]).toEqual([0x1f, 0x8b]);
    const toml = await readFile(armToml(), 'utf8');
    expect(toml).toMatch(/^path = "\/usr\/bin\/qemu-system-aarch64"$/m);
    for (const line of [
      'machine_type = "virt"',
      'kernel_params = "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"',
      'firmware = "/usr/share/AAVMF/AAVMF_CODE.fd"',
      'cpu_features = "pmu=off"',
      `kernel = "${share(armPrefix())}/vmlinuz.container"`,
      `initrd = "${share(armPrefix())}/kata-containers-initrd.img"`,
    ])
      expect(toml).toContain(line);
  });

  it('boots from the installed aarch64 configuration (UEFI firmware, Image.gz); its qemu-system-aarch64 picks the guest arch, no --arch', async () => {
    const r = await runCli(['boot', '--config', armToml(), '--timeout', '600', '--', 'uname', '-m'], { timeout: 15 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('aarch64');
  });
});

describe('a measured rootfs (--verity)', () => {
  const vp = () => join(work, 'verity');
  const cfgPath = () => join(vp(), 'usr/share/defaults/kata-containers/configuration-qemu.toml');

  it('boot-tests the dm-verity image with root on /dev/dm-0 and installs its kernel_verity_params: root_hash_.txt, configuration-qemu.toml, manifest.json', async () => {
    const r = await osb(['build', '--image', '--kernel', '--verity', '--prefix', vp(), '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.bootTests).toEqual([
      expect.objectContaining({
        passed: true,
        cached: false,
        root: '/dev/dm-0',
        artifact: 'kata-debian-bookworm.image',
        osRelease: 'Debian GNU/Linux 12 (bookworm)',
      }),
    ]);
    expect(await listing(share(vp()))).toContain('root_hash_.txt');
    const params = (await readFile(join(share(vp()), 'root_hash_.txt'), 'utf8')).trim();
    expect(params).toMatch(/^root_hash=[0-9a-f]{64},salt=[0-9a-f]{64},data_blocks=\d+,data_block_size=4096,hash_block_size=4096$/);
    expect(await readFile(cfgPath(), 'utf8')).toContain(`kernel_verity_params = "${params}"`);
    const m = JSON.parse(await readFile(join(share(vp()), 'manifest.json'), 'utf8'));
    expect(m.rootfs[0]).toMatchObject({ role: 'image', kernelVerityParams: params });
    expect(m.rootfs[0].inputs.artifact).toBe('ext4,dax,mbr,verity');
    const sums = await execa('sha256sum', ['-c', 'usr/share/kata-containers/SHA256SUMS'], { cwd: vp(), reject: false });
    expect(sums.exitCode, String(sums.stdout)).toBe(0);
    expect(String(sums.stdout)).toContain('usr/share/kata-containers/root_hash_.txt: OK');
  });

  it('boots from the installed configuration-qemu.toml with the verity table on the command line', async () => {
    const r = await runCli<BootResult>(['boot', '--config', cfgPath(), '--timeout', '600', '--json', '--', 'cat', '/proc/cmdline'], { timeout: 15 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.container!.stdout).toMatch(
      /dm-mod\.create="dm-verity,,,ro,0 \d+ verity 1 \/dev\/pmem0p1 \/dev\/pmem0p2 4096 4096 \d+ 0 sha256 [0-9a-f]{64} [0-9a-f]{64}" root=\/dev\/dm-0 /,
    );
  });

  it('a new image without --verity takes the verity parameters out of the install', async () => {
    const r = await osb(['build', '--image', '--kernel', '--prefix', vp(), '-f', '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await listing(share(vp()))).not.toContain('root_hash_.txt');
    expect(await readFile(cfgPath(), 'utf8')).not.toContain('kernel_verity_params');
    expect(r.json!.bootTests).toEqual([expect.objectContaining({ passed: true, root: '/dev/pmem0p1' })]);
  });
});

describe('cache faults', () => {
  it('a corrupt cache entry is detected, rebuilt and not used', async () => {
    // The entry of the installed initrd: the -f test above added another one (another epoch).
    const stage = join(cacheDir, 'initrd');
    const good = await sha256File(join(share(), 'kata-busybox-bookworm.initrd'));
    const entries = (await readdir(stage)).map((key) => join(stage, key, 'kata-busybox-bookworm.initrd'));
    const hashes = await Promise.all(entries.map((f) => sha256File(f).catch(() => '')));
    const file = entries[hashes.indexOf(good)]!;
    expect(file, `no initrd cache entry holds the installed initrd (${good})`).toBeDefined();
    const bytes = await readFile(file);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(file, bytes);
    const r = await osb(['build', '--prefix', prefix()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cache entry .*initrd.* is corrupt/);
    const initrd = r.json!.rows.find((x) => x.artifact === 'kata-busybox-bookworm.initrd');
    expect(initrd).toMatchObject({ cached: false, sha256: good }); // rebuilt bit-identical (SOURCE_DATE_EPOCH)
    expect(r.json!.install).toBe('unchanged');
    expect(await sha256File(file)).toBe(good);
  });
});

describe('--verify-reproducible', () => {
  it('busybox initrd: two builds from empty caches are bit-identical', async () => {
    const r = await osb<ReproducibleResult>(['build', 'busybox', '--initrd', '--verify-reproducible']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.reproducible).toBe(true);
    const a = r.json!.artifacts[0]!;
    expect(a.file).toBe('kata-busybox-bookworm.initrd');
    expect(a.sha256[0]).toBe(a.sha256[1]);
  });
});

describe('interrupted builds', () => {
  it('SIGTERM while the rootfs container runs: container removed, nothing installed, no work left', async () => {
    const p = join(work, 'killed-rootfs');
    const r = await killWhen(['build', '--image', '--no-cache', '--no-boot-test', '--prefix', p], async (pid) => (await buildContainers(pid)).length > 0);
    expect(r.exitCode).toBe(143);
    expect(r.stderr).toMatch(/interrupted \(SIGTERM\)/);
    expectOneInterrupted(r.stderr); // not the killed container's `docker run … (exit 137)`
    expect(r.left).toEqual({ containers: [], processes: [], work: [] });
    expect(await lstat(share(p)).catch(() => undefined)).toBeUndefined();
  });

  it('SIGTERM the moment a boot test has passed (its result being stored): one error[INTERRUPTED], nothing installed', async () => {
    const p = join(work, 'killed-after-boot');
    // A kernel to boot-test with (the seeded one), installed untested.
    const k = await osb(['build', '--kernel', '--no-boot-test', '--prefix', p]);
    expect(k.exitCode, k.stderr).toBe(0);
    const before = await listing(p);
    // A new epoch makes a new initrd, so its boot test really runs.
    const r = await killWhen(['build', 'busybox', '--initrd', '--prefix', p, '--boot-timeout', '600'], (_pid, progress) => /✓ boot test /.test(progress), {
      SOURCE_DATE_EPOCH: '1700000003',
    });
    expect(r.exitCode).toBe(143);
    expectOneInterrupted(r.stderr); // not INTERNAL ENOENT …/boot.json
    expect(r.left).toEqual({ containers: [], processes: [], work: [] });
    expect(await listing(p)).toEqual(before);
  });

  it('SIGTERM during a boot test: QEMU killed, the old install intact; the next build succeeds', async () => {
    const p = join(work, 'killed-boot');
    await cp(prefix(), p, { recursive: true, verbatimSymlinks: true });
    const before = await listing(p);
    const sums = await readFile(join(share(p), 'SHA256SUMS'), 'utf8');
    // A new epoch makes a new initrd, so its boot test (with the installed kernel) really runs.
    const args = ['build', 'busybox', '--initrd', '--prefix', p, '-f', '--boot-timeout', '600'];
    // This build's boot VM, not its `qemu-system-x86_64 --version` or KVM probe, nor anyone else's QEMU.
    const r = await killWhen(args, async (pid) => (await bootVmsOf(pid)).length > 0, { SOURCE_DATE_EPOCH: '1700000002' });
    expect(r.exitCode).toBe(143);
    expect(r.left).toEqual({ containers: [], processes: [], work: [] });
    expect(await listing(p)).toEqual(before);
    expect(await readFile(join(share(p), 'SHA256SUMS'), 'utf8')).toBe(sums);

    const again = await osb(args.slice(0), { SOURCE_DATE_EPOCH: '1700000002' });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json!.install).toBe('replaced');
    expect(again.json!.bootTests).toEqual([
      expect.objectContaining({ passed: true, cached: false, kernel: `installed ${share(p)}/vmlinuz-${kernel.version}-${kernel.configVersion}` }),
    ]);
    // A partial build keeps what it did not build (the image, the kernel).
    expect(again.json!.notes.join('\n')).toMatch(/kept from the existing install: .*kata-debian-bookworm\.image/);
    expect(await readlink(join(share(p), 'kata-containers.img'))).toBe('kata-debian-bookworm.image');
  });
});

describe('kernel stage and engines', () => {
  it('SIGTERM while the kernel source is extracted: no partial tree, nothing installed', async () => {
    const cache = join(work, 'cold-cache');
    const p = join(work, 'killed-kernel');
    const trees = join(cache, 'kernel-trees');
    const partial = async () => (await readdir(trees).catch(() => [] as string[])).filter((n) => /\.(new|extract)-\d+/.test(n));
    const r = await killWhen(['build', '--kernel', '--no-boot-test', '--prefix', p], async () => (await partial()).length > 0, { OSBUILDER_CACHE_DIR: cache });
    expect(r.exitCode).toBe(143);
    expect(r.left.processes).toEqual([]);
    expect(await partial()).toEqual([]);
    expect(await readdir(join(cache, 'work'))).toEqual([]);
    expect(await lstat(share(p)).catch(() => undefined)).toBeUndefined();
  });

  it('--docker-host: the rootfs is built on that engine (an unreachable one is DOCKER_UNAVAILABLE, naming it)', async () => {
    const r = await osb<CliErrorJson>([
      'build',
      'busybox',
      '--initrd',
      '--no-cache',
      '--no-boot-test',
      '--prefix',
      join(work, 'remote'),
      '--docker-host',
      'unix:///nonexistent/docker.sock',
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('DOCKER_UNAVAILABLE');
    expect(r.json!.error.message).toContain('at unix:///nonexistent/docker.sock');
  });
});

describe('a full disk under the prefix', () => {
  const mnt = () => join(work, 'small');
  beforeAll(async () => {
    await mkdir(mnt(), { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt()]);
  });
  afterAll(async () => {
    await execa('umount', [mnt()], { reject: false });
  });

  it('NO_SPACE, the old install intact, no staged trees left', async () => {
    const first = await osb(['build', 'busybox', '--initrd', '--no-boot-test', '--prefix', mnt()]);
    expect(first.exitCode, first.stderr).toBe(0);
    // Installed untested, as asked, and the manifest says so.
    expect(JSON.parse(await readFile(join(share(mnt()), 'manifest.json'), 'utf8')).bootTested).toBe(false);
    const before = await listing(mnt());
    const r = await osb<CliErrorJson>(['build', '--prefix', mnt(), '-f', '--no-boot-test']);
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('NO_SPACE');
    expect(await listing(mnt())).toEqual(before);
    const sums = await execa('sha256sum', ['-c', 'usr/share/kata-containers/SHA256SUMS'], { cwd: mnt(), reject: false });
    expect(sums.exitCode).toBe(0);
  });
});
