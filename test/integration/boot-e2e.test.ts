/**
 * End to end under QEMU (TCG here: KVM does not run guests on this host) with
 * the guest kernel from the kernel stage: a busybox initrd with the agent as
 * init, and an ext4 image with the DAX header via nvdimm (and as virtio-blk).
 * Bad guests: a panicking kernel, an agent that never answers, an interrupt.
 * Every test ends with no QEMU left carrying its -name.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { guestKernel, type GuestKernel } from '../support/kernel.js';
import { buildInitrd } from '../../initrd-builder/index.js';
import { buildImage } from '../../image-builder/index.js';
import { agentRootfs } from '../support/agent.js';
import { cliPath, runCli, repoRoot } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { defaultAgentBinary } from '../../agent/index.js';
import { planQemu, resolveAccel, Vm } from '../../runtime/index.js';

let dir: string;
let kernel: GuestKernel;
let initrd: string;
let image: string;
let agentVersion: string;
const tag = `osb-e2e-${process.pid}`;
let seq = 0;
const vmName = () => `${tag}-${++seq}`;

async function qemuLeft(name: string): Promise<string> {
  const r = await execa('pgrep', ['-af', `qemu-system.*-name ${name}( |$)`], { reject: false });
  return String(r.stdout).trim();
}

async function initrdFrom(name: string, init?: string): Promise<string> {
  const root = await agentRootfs(join(dir, `${name}-root`), init ? { init } : {});
  const output = join(dir, `${name}.initrd`);
  await buildInitrd({ rootfs: root, output });
  return output;
}

beforeAll(async () => {
  dir = await makeTempDir('osb-e2e-');
  kernel = await guestKernel();
  agentVersion = (await defaultAgentBinary()).version;
  initrd = await initrdFrom('agent');
  const root = await agentRootfs(join(dir, 'image-root'));
  image = join(dir, 'kata.img');
  await buildImage({ rootfs: root, output: image });
});

/** Boots with the given extra args and parses the --json result. */
async function bootJson(name: string, args: string[], command: string[]) {
  const r = await runCli(['boot', '--json', '--name', name, '--kernel', kernel.bzImage, '--memory', '512', '--timeout', '300', ...args, '--', ...command], { timeout: 10 * 60_000 });
  expect(await qemuLeft(name)).toBe('');
  return r;
}

describe('boot an initrd with the agent as init', () => {
  it('answers Check/Version, runs the command, shows the initramfs root and the kernel release', async () => {
    const consoleLog = join(dir, 'initrd-console.log');
    const r = await bootJson(vmName(), ['--initrd', initrd, '--console-log', consoleLog], ['sh', '-c', 'cat /proc/mounts; echo; uname -r']);
    expect(r.exitCode).toBe(0);
    const j = r.json;
    expect(j.agent).toEqual({ version: agentVersion, grpcVersion: '0.0.1' });
    expect(j.channel).toBe('serial');
    expect(j.initrd).toBe(initrd);
    expect(j.command.exitCode).toBe(0);
    const [mounts, release] = j.command.stdout.split('\n\n');
    const table = mounts.split('\n').map((l: string) => l.split(' ').slice(0, 3).join(' '));
    expect(table[0]).toMatch(/^(rootfs|none) \/ (rootfs|tmpfs|ramfs)$/);
    for (const m of ['proc /proc proc', 'sysfs /sys sysfs', 'dev /dev devtmpfs', 'devpts /dev/pts devpts', 'tmpfs /run tmpfs', 'tmpfs /tmp tmpfs']) expect(table).toContain(m);
    expect(release.trim()).toBe(kernel.release);
    expect(j.shutdown).toBe('clean');
    expect(j.timings.qemuStartToAgentReadyMs).toBeGreaterThan(0);
    expect(j.kernelParams).toEqual(expect.arrayContaining(['console=hvc0', 'panic=1', 'iommu=off']));
    expect(await readFile(consoleLog, 'utf8')).toMatch(/kata-agent: .* starting as init/);
  });

  it("exits with the command's exit code and prints its streams apart (human output)", async () => {
    const name = vmName();
    const r = await runCli(['boot', '--name', name, '--kernel', kernel.bzImage, '--initrd', initrd, '--memory', '512', '--timeout', '300', '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 7'], { timeout: 10 * 60_000 });
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe('to-out'); // runCli strips the final newline
    expect(r.stderr).toMatch(/to-err/);
    expect(r.stderr).toMatch(/^agent .* \(api 0\.0\.1\) over serial, (kvm|tcg)/m);
    expect(r.stderr).toMatch(/^command exited with 7$/m);
    expect(r.stderr).toMatch(/^timings: qemu start -> agent ready \d+ ms, command \d+ ms, shutdown \d+ ms \(clean\), total \d+ ms$/m);
    expect(await qemuLeft(name)).toBe('');
  });
});

describe('boot an ext4 image', () => {
  it('via nvdimm: root on /dev/pmem0p1 mounted with dax', async () => {
    const r = await bootJson(vmName(), ['--image', image], ['sh', '-c', 'cat /proc/mounts; echo; uname -r; echo; cat /proc/cmdline']);
    expect(r.exitCode).toBe(0);
    const [mounts, release, cmdline] = r.json.command.stdout.split('\n\n');
    const root = mounts.split('\n').find((l: string) => l.split(' ')[1] === '/');
    expect(root).toMatch(/^\/dev\/(root|pmem0p1) \/ ext4 ro,/);
    expect(root).toMatch(/[ ,]dax/);
    expect(release.trim()).toBe(kernel.release);
    expect(cmdline).toMatch(/root=\/dev\/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4/);
    expect(r.json.image).toBe(image);
    expect(r.json.qemu.argv).toEqual(expect.arrayContaining(['nvdimm,id=nv0,memdev=mem0,unarmed=on']));
  });

  it('via virtio-blk with --disable-image-nvdimm: root on /dev/vda1, no dax', async () => {
    const r = await bootJson(vmName(), ['--image', image, '--disable-image-nvdimm'], ['sh', '-c', 'grep " / " /proc/mounts; cat /proc/cmdline']);
    expect(r.exitCode).toBe(0);
    const [root, cmdline] = r.json.command.stdout.split('\n');
    expect(root).toMatch(/^\/dev\/(root|vda1) \/ ext4 ro,/);
    expect(root).not.toMatch(/dax/);
    expect(cmdline).toMatch(/root=\/dev\/vda1 /);
  });

  it('from a configuration.toml (virtio-blk, 2 vCPUs)', async () => {
    const cfg = join(dir, 'configuration.toml');
    await writeFile(cfg, `[hypervisor.qemu]\nkernel = "${kernel.bzImage}"\nimage = "${image}"\ndisable_image_nvdimm = true\ndefault_memory = 512\ndefault_vcpus = 2\n[agent.kata]\ndial_timeout = 300\n`);
    const name = vmName();
    const r = await runCli(['boot', '--json', '--name', name, '--config', cfg, '--', 'sh', '-c', 'grep -c ^processor /proc/cpuinfo; cat /proc/cmdline'], { timeout: 10 * 60_000 });
    expect(r.exitCode).toBe(0);
    const [cpus, cmdline] = r.json.command.stdout.split('\n');
    expect(cpus).toBe('2');
    expect(cmdline).toMatch(/root=\/dev\/vda1 /);
    expect(await qemuLeft(name)).toBe('');
  });
});

describe('the agent as init, through the runtime API', () => {
  it('powers the VM off when the host leaves the channel for good (agent.hangup_timeout)', async () => {
    const runDir = await makeTempDir('osb-hangup-');
    const channel = { kind: 'serial' as const, socket: join(runDir, 'agent.sock') };
    const { accel } = await resolveAccel('auto', 'qemu-system-x86_64');
    const name = vmName();
    const plan = planQemu({
      arch: 'x86_64', qemu: 'qemu-system-x86_64', machineType: 'q35', accel, kernel: kernel.bzImage, root: { kind: 'initrd', path: initrd },
      vcpus: 1, memoryMiB: 512, extraKernelParams: 'agent.hangup_timeout=2', channel, qmpSocket: join(runDir, 'qmp.sock'),
      console: 'hvc', entropySource: '/dev/urandom', name, debug: false, agentDebug: false,
    });
    const vm = Vm.start({ plan, channel });
    try {
      const { client } = await vm.waitForAgent(vm.startedAt + 300_000);
      expect(await client.check()).toBe(1);
      client.close();
      // Nobody kills QEMU here: the guest powers itself off.
      const exit = await vm.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(vm.consoleTail()).toMatch(/host closed the channel and did not come back within 2s/);
      expect(vm.consoleTail()).toMatch(/powering off/);
    } finally {
      await vm.kill();
    }
    expect(await qemuLeft(name)).toBe('');
  });
});

describe('bad guests: a clear error, non-zero exit, no QEMU left', () => {
  it('a kernel panic (the initrd /init exits) is BOOT_FAILED with the panic line', async () => {
    const bad = await initrdFrom('exits', '#!/bin/sh\necho OSB-INIT-EXITING\nexit 0\n');
    const name = vmName();
    const r = await runCli(['boot', '--name', name, '--kernel', kernel.bzImage, '--initrd', bad, '--memory', '512', '--timeout', '300', '--', 'true'], { timeout: 10 * 60_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[BOOT_FAILED\]: kernel panic before the agent answered: Kernel panic - not syncing: Attempted to kill init!/m);
    expect(r.stderr).toMatch(/OSB-INIT-EXITING/);
    expect(await qemuLeft(name)).toBe('');
  });

  it('an agent that never answers (/init sleeps) is BOOT_TIMEOUT after --timeout', async () => {
    const bad = await initrdFrom('sleeps', '#!/bin/sh\necho OSB-INIT-SLEEPING\nexec sleep 100000\n');
    const name = vmName();
    const r = await runCli(['boot', '--json', '--name', name, '--kernel', kernel.bzImage, '--initrd', bad, '--memory', '512', '--timeout', '20', '--', 'true'], { timeout: 10 * 60_000 });
    expect(r.exitCode).toBe(1);
    expect(r.json.error.code).toBe('BOOT_TIMEOUT');
    expect(r.json.error.message).toMatch(/^the agent did not answer within 20\.0s/);
    expect(r.json.error.hint).toMatch(/raise --timeout/);
    expect(await qemuLeft(name)).toBe('');
  });

  it('SIGTERM while booting kills QEMU', async () => {
    const name = vmName();
    // --debug announces the QEMU command as it is started: interrupt right then.
    const child = execa('node', [cliPath, 'boot', '--debug', '--name', name, '--kernel', kernel.bzImage, '--initrd', initrd, '--memory', '512', '--timeout', '300', '--', 'sleep', '600'], { reject: false, cwd: repoRoot });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes(`-name ${name} `)) resolve();
      });
      void child.then(() => reject(new Error(`boot ended before QEMU started:\n${err}`)));
    });
    // QEMU is spawned in the same tick as that line; the signal is handled on a later one.
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(143);
    expect(r.stderr).toMatch(/interrupted \(SIGTERM\): cleaning up/);
    expect(await qemuLeft(name)).toBe('');
  });
});

describe('boot --help', () => {
  it("documents the issue's flags", async () => {
    const r = await runCli(['boot', '--help']);
    for (const flag of ['--config', '--kernel', '--image', '--initrd', '--kernel-params', '--vcpus', '--memory', '--accel', '--timeout', '--console-log']) expect(r.stdout).toContain(flag);
  });
});
