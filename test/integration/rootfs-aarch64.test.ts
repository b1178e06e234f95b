/**
 * aarch64 on this x86_64 host, without emulation in the build: the busybox
 * rootfs from Debian's busybox-static:arm64 with the cross-compiled agent as
 * init, packed into an initrd. Every binary is checked by its ELF header, the
 * busybox taken from the initrd runs under qemu-aarch64, and the initrd boots
 * the cross-built aarch64 kernel under qemu-system-aarch64 (virt, -cpu max,
 * TCG) with the container proof.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAgentBinary } from '../../agent/index.js';
import { ARCH_FACTS } from '../../core/arch.js';
import { parseElf, type BuildRootfsResult } from '../../rootfs-builder/index.js';
import type { BootResult } from '../../runtime/index.js';
import { bootJson, vmNamer } from '../support/boot.js';
import { runCli, type CliErrorJson, type CliResult } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { cpioExtract, decompressTo } from '../support/initrd.js';
import { aarch64Kernel, type GuestKernel } from '../support/kernel.js';
import { buildDist } from '../support/rootfs.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';

let work: string;
let agent: string;
let rootfs: CliResult<BuildRootfsResult>;
let initrd: CliResult;
let image: CliResult;
let kernel: GuestKernel;
const initrdPath = () => join(work, 'kata-busybox-aarch64.initrd');
const imagePath = () => join(work, 'kata-busybox-aarch64.img');
const AAVMF = '/usr/share/AAVMF/AAVMF_CODE.fd';
const vmName = vmNamer('osb-aarch64');

async function elf(path: string) {
  return parseElf(await readFile(path));
}

beforeAll(async () => {
  await buildDist();
  kernel = await aarch64Kernel();
  work = await makeTempDir('osb-rootfs-aarch64-');
  agent = (await defaultAgentBinary({ arch: 'aarch64' })).path;
  rootfs = await runCli<BuildRootfsResult>(
    ['rootfs', 'busybox', '--arch', 'arm64', '--bootstrap-base', '--agent', agent, '-o', join(work, 'rootfs'), '--json'],
    { env: { SOURCE_DATE_EPOCH: SDE }, timeout: 20 * 60_000 },
  );
  if (rootfs.exitCode === 0) {
    initrd = await runCli(['initrd', join(work, 'rootfs'), '-o', initrdPath(), '--compression', 'gzip', '--json'], { env: { SOURCE_DATE_EPOCH: SDE } });
    image = await runCli(['image', join(work, 'rootfs'), '-o', imagePath(), '--json'], { env: { SOURCE_DATE_EPOCH: SDE } });
  }
}, 25 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('busybox rootfs for aarch64 on x86_64', () => {
  const dir = () => join(work, 'rootfs');

  it('is built from busybox-static:arm64 by an x86_64 builder (no emulation), the agent as init', async () => {
    expect(rootfs.exitCode, rootfs.stderr).toBe(0);
    expect(rootfs.json).toMatchObject({ distro: 'busybox', arch: 'aarch64', initMode: 'agent-init' });
    // The builder is an amd64 image: busybox-static:arm64 is unpacked, never run.
    expect((await execa('docker', ['image', 'inspect', '--format', '{{.Architecture}}', rootfs.json!.builderImage!])).stdout).toBe('amd64');
    expect(await readlink(join(dir(), 'sbin/init'))).toBe('/usr/bin/kata-agent');
    expect(await readFile(join(dir(), 'var/lib/osbuilder/packages.txt'), 'utf8')).toMatch(/^busybox-static=1:1\.\d+/m);
  });

  it('holds only aarch64 static executables: busybox and the agent', async () => {
    for (const f of ['bin/busybox', 'usr/bin/kata-agent']) {
      const e = await elf(join(dir(), f));
      expect(e, f).toMatchObject({ machine: ARCH_FACTS.aarch64.elfMachine, class: 64, endian: 'little' });
      expect(e!.interpreter, f).toBeUndefined();
    }
    expect((await readFile(join(dir(), 'usr/bin/kata-agent'))).equals(await readFile(agent))).toBe(true);
  });

  it('packs into an initrd whose /init is the aarch64 agent and whose busybox runs under qemu-aarch64', async () => {
    expect(initrd?.exitCode, initrd?.stderr).toBe(0);
    const cpio = join(work, 'initrd.cpio');
    await decompressTo(initrdPath(), 'gzip', cpio);
    const x = join(work, 'extracted');
    await mkdir(x);
    await cpioExtract(cpio, x);
    expect(await readlink(join(x, 'init'))).toBe('/usr/bin/kata-agent');
    expect(await elf(join(x, 'usr/bin/kata-agent'))).toMatchObject({ machine: 183 });
    expect(await elf(join(x, 'bin/busybox'))).toMatchObject({ machine: 183 });
    const run = await execa(ARCH_FACTS.aarch64.qemuUser, [join(x, 'bin/busybox'), 'uname', '-m']);
    expect(run.stdout).toBe('aarch64');
  });
});

describe('the aarch64 kernel and initrd, booted', () => {
  it("is an arm64 Image of the cross-built 6.1 kernel, installed under Kata's names", async () => {
    // arch/arm64/boot/Image starts with the arm64 boot header: "ARM\x64" at offset 56.
    const head = await readFile(kernel.bzImage);
    expect(head.subarray(56, 60).toString('latin1')).toBe('ARM\x64');
    expect(kernel.entry.names.vmlinux).toBe(`vmlinux-${kernel.version}-${kernel.configVersion}`);
    expect(kernel.entry.names.vmlinuz).toBe(`vmlinuz-${kernel.version}-${kernel.configVersion}`);
    expect(await readFile(kernel.config, 'utf8')).toMatch(/^CONFIG_ARM64=y$/m);
  });

  it('boots under qemu-system-aarch64 (virt, TCG) and runs the container: an arm64 busybox says aarch64', async () => {
    const r = await bootJson<BootResult>(
      vmName(),
      kernel.bzImage,
      ['--arch', 'aarch64', '--initrd', initrdPath()],
      ['sh', '-c', 'uname -m; uname -r; echo $$'],
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.qemu.argv[0]).toMatch(/(^|\/)qemu-system-aarch64$/);
    expect(j.qemu.argv).toEqual(expect.arrayContaining(['-cpu', 'max']));
    expect(j.qemu.argv.join(' ')).toMatch(/-machine virt,accel=tcg/);
    expect(j.container).toMatchObject({ exitCode: 0, stderr: '' });
    expect(j.container!.stdout).toBe(`aarch64\n${kernel.release}\n1\n`);
    expect(j.shutdown).toBe('clean');
  });

  it('boots the image over virtio-blk (disable_image_nvdimm): root on /dev/vda1', async () => {
    expect(image?.exitCode, image?.stderr).toBe(0);
    const r = await bootJson<BootResult>(vmName(), kernel.bzImage, ['--arch', 'aarch64', '--image', imagePath(), '--disable-image-nvdimm'], ['uname', '-m']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.kernelParams).toContain('root=/dev/vda1');
    expect(r.json!.container!.stdout).toBe('aarch64\n');
  });

  it("boots the image over nvdimm with Kata's arm64 UEFI firmware (AAVMF, its ACPI NFIT): root on /dev/pmem0p1 with DAX", async () => {
    const r = await bootJson<BootResult>(
      vmName(),
      kernel.bzImage,
      ['--arch', 'aarch64', '--image', imagePath(), '--firmware', AAVMF],
      ['sh', '-c', 'uname -m; cat /proc/cmdline'],
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.qemu.argv).toEqual(expect.arrayContaining(['-bios', AAVMF]));
    expect(r.json!.container!.stdout).toMatch(/^aarch64\n.*root=\/dev\/pmem0p1 rootflags=dax/);
  });

  it('refuses an nvdimm image without firmware before starting QEMU, naming both ways out', async () => {
    const r = await bootJson<CliErrorJson>(vmName(), kernel.bzImage, ['--arch', 'aarch64', '--image', imagePath()], ['true']);
    expect(r.exitCode).toBe(1);
    expect(r.json!.error).toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/only through UEFI firmware/),
      hint: expect.stringMatching(/AAVMF_CODE\.fd.*disable_image_nvdimm/),
    });
  });
});
