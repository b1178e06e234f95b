/**
 * Debian for aarch64 on this x86_64 host, with emulation: the base bootstrapped
 * for arm64 (mmdebstrap --arch=arm64, recorded as linux/arm64), the builder
 * run as an arm64 container (--platform linux/arm64) through qemu-user's
 * binfmt handler, systemd as init and the agent as its service. The image
 * boots the cross-built aarch64 kernel under qemu-system-aarch64 (virt, TCG)
 * over virtio-blk, and a container sees systemd as the guest's pid 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAgentBinary } from '../../agent/index.js';
import { ARCH_FACTS } from '../../core/arch.js';
import { parseElf, type BuildRootfsResult } from '../../rootfs-builder/index.js';
import type { BootResult } from '../../runtime/index.js';
import { bootJson, vmNamer } from '../support/boot.js';
import { runCli, type CliResult } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { aarch64Kernel, type GuestKernel } from '../support/kernel.js';
import { buildDist } from '../support/rootfs.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';

let work: string;
let agent: string;
let rootfs: CliResult<BuildRootfsResult>;
let image: CliResult;
let kernel: GuestKernel;
const dir = () => join(work, 'rootfs');
const imagePath = () => join(work, 'kata-debian-aarch64.img');
const vmName = vmNamer('osb-aarch64-debian');
const inspect = async (ref: string, format: string) => (await execa('docker', ['image', 'inspect', '--format', format, ref])).stdout;

beforeAll(async () => {
  await buildDist();
  kernel = await aarch64Kernel();
  work = await makeTempDir('osb-rootfs-aarch64-debian-');
  agent = (await defaultAgentBinary({ arch: 'aarch64' })).path;
  rootfs = await runCli<BuildRootfsResult>(['rootfs', 'debian', '--arch', 'aarch64', '--agent', agent, '-o', dir(), '--json'], {
    env: { SOURCE_DATE_EPOCH: SDE },
    timeout: 40 * 60_000,
  });
  if (rootfs.exitCode === 0) image = await runCli(['image', dir(), '-o', imagePath(), '--json'], { env: { SOURCE_DATE_EPOCH: SDE } });
}, 45 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Debian bookworm rootfs for aarch64, built under emulation', () => {
  it('is built by an arm64 builder on an arm64 base, both recorded as linux/arm64', async () => {
    expect(rootfs.exitCode, rootfs.stderr).toBe(0);
    expect(rootfs.json).toMatchObject({ distro: 'debian', arch: 'aarch64', initMode: 'systemd' });
    expect(await inspect(rootfs.json!.builderImage!, '{{.Os}}/{{.Architecture}}')).toBe('linux/arm64');
    expect(await inspect('osbuilder/debian-base:bookworm-aarch64', '{{.Os}}/{{.Architecture}}')).toBe('linux/arm64');
  });

  it('holds arm64 packages and binaries: systemd as /sbin/init, the aarch64 agent as its service', async () => {
    expect(await readFile(join(dir(), 'etc/os-release'), 'utf8')).toMatch(/^VERSION_CODENAME=bookworm$/m);
    expect(await readlink(join(dir(), 'sbin/init'))).toBe('/lib/systemd/systemd');
    for (const f of ['usr/lib/systemd/systemd', 'usr/bin/bash', 'usr/bin/kata-agent']) {
      expect(parseElf(await readFile(join(dir(), f))), f).toMatchObject({ machine: ARCH_FACTS.aarch64.elfMachine, class: 64 });
    }
    expect((await readFile(join(dir(), 'usr/bin/kata-agent'))).equals(await readFile(agent))).toBe(true);
    expect(await readFile(join(dir(), 'usr/lib/systemd/system/kata-agent.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/kata-agent$/m);
    const status = await readFile(join(dir(), 'var/lib/dpkg/status'), 'utf8');
    expect(status).toMatch(/^Package: systemd\nStatus: install ok installed\n(?:.+\n)*?Architecture: arm64$/m);
    expect(status).not.toMatch(/^Architecture: amd64$/m);
  });
});

describe('the Debian aarch64 image, booted', () => {
  it('boots over virtio-blk under qemu-system-aarch64 (TCG): systemd is pid 1, the container runs on arm64', async () => {
    expect(image?.exitCode, image?.stderr).toBe(0);
    const r = await bootJson<BootResult>(
      vmName(),
      kernel.bzImage,
      ['--arch', 'aarch64', '--image', imagePath(), '--disable-image-nvdimm', '--guest-mount', '/proc:/guest/proc'],
      ['sh', '-c', 'uname -m; cat /guest/proc/1/comm'],
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.qemu.argv[0]).toMatch(/(^|\/)qemu-system-aarch64$/);
    expect(j.kernelParams).toContain('root=/dev/vda1');
    expect(j.container).toMatchObject({ exitCode: 0, stderr: '' });
    expect(j.container!.stdout).toBe('aarch64\nsystemd\n');
    expect(j.shutdown).toBe('clean');
  });
});
