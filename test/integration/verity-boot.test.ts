/**
 * A measured rootfs booted for real (Kata's MEASURED_ROOTFS): dm-verity images
 * made by `osbuilder image --verity` (ext4 and erofs), booted under QEMU with
 * the default kernel and kernel_verity_params as Kata's runtime turns them
 * into dm-mod.create + root=/dev/dm-0, over nvdimm and over virtio-blk. What
 * the guest mounted is read from a container that binds the guest's /proc and
 * /sys. A copy with one byte of a file flipped and a wrong root_hash are
 * refused with VERITY_FAILED, never a hang; nothing of a VM is left behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { guestKernel, type GuestKernel } from '../support/kernel.js';
import { agentRootfs } from '../support/agent.js';
import { runCli, type CliErrorJson } from '../support/cli.js';
import type { ImageResult } from '../../image-builder/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { bootJson, vmNamer } from '../support/boot.js';

const EPOCH = '1700000000';
let dir: string;
let kernel: GuestKernel;
let root: string;
interface VerityImage {
  path: string;
  params: string;
  rootStart: number;
}
let ext4: VerityImage;
let erofs: VerityImage;
const vmName = vmNamer('osb-verity');

async function verityImage(name: string, fsType: string): Promise<VerityImage> {
  const out = join(dir, name);
  const r = await runCli<ImageResult>(['image', root, '-o', join(out, 'kata.img'), '--fs-type', fsType, '--verity', '--json'], {
    env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH } as Record<string, string>,
  });
  expect(r.exitCode, r.stderr).toBe(0);
  const params = (await readFile(join(out, 'root_hash_.txt'), 'utf8')).trim();
  expect(params).toBe(r.json!.verity!.kernelVerityParams);
  return { path: r.json!.path, params, rootStart: r.json!.partitions[0]!.start };
}

beforeAll(async () => {
  dir = await makeTempDir('osb-verity-');
  kernel = await guestKernel();
  root = await agentRootfs(join(dir, 'root'));
  for (const d of ['ext4', 'erofs']) await mkdir(join(dir, d));
  ext4 = await verityImage('ext4', 'ext4');
  erofs = await verityImage('erofs', 'erofs');
});

/** The guest's root mount (mountinfo), and dm-0 as sysfs shows it: name, dev, ro, the devices under it. */
const GUEST_VIEW = ['--guest-mount', '/proc:/guest/proc', '--guest-mount', '/sys:/guest/sys'];
const ROOT_VIEW = [
  'sh',
  '-c',
  'grep " / / " /guest/proc/1/mountinfo; d=/guest/sys/block/dm-0; cat $d/dm/name $d/dev $d/ro; ls $d/slaves | tr "\\n" " "; echo; cat /proc/cmdline',
];

function rootView(stdout: string) {
  const [mount, dmName, dev, ro, slaves, cmdline] = stdout.split('\n');
  // mountinfo: id parent major:minor root mountpoint options ... - fstype source superoptions
  const f = mount!.split(' ');
  return {
    majorMinor: f[2],
    options: f[5]!.split(','),
    fsType: f[f.indexOf('-') + 1],
    dmName,
    dev,
    ro,
    slaves: slaves!.trim().split(' ').sort(),
    cmdline: cmdline!,
  };
}

describe('a dm-verity image boots with root on /dev/dm-0', () => {
  it('ext4 over nvdimm: the root is dm-0 (dm-verity over pmem0p1 + pmem0p2), read-only', async () => {
    const r = await bootJson(vmName(), kernel.bzImage, ['--image', ext4.path, '--kernel-verity-params', ext4.params, ...GUEST_VIEW], ROOT_VIEW);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const v = rootView(r.json!.container!.stdout!);
    expect(v).toMatchObject({ majorMinor: v.dev, fsType: 'ext4', dmName: 'dm-verity', ro: '1', slaves: ['pmem0p1', 'pmem0p2'] });
    expect(v.options).toContain('ro');
    expect(v.cmdline).toContain('root=/dev/dm-0 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4');
    expect(v.cmdline).toMatch(/dm-mod\.create="dm-verity,,,ro,0 \d+ verity 1 \/dev\/pmem0p1 \/dev\/pmem0p2 4096 4096 \d+ 0 sha256 [0-9a-f]{64} [0-9a-f]{64}"/);
    expect(r.json!.kernelParams).toContain('root=/dev/dm-0');
  });

  it('ext4 over virtio-blk (--disable-image-nvdimm): dm-verity over vda1 + vda2', async () => {
    const r = await bootJson(
      vmName(),
      kernel.bzImage,
      ['--image', ext4.path, '--disable-image-nvdimm', '--kernel-verity-params', ext4.params, ...GUEST_VIEW],
      ROOT_VIEW,
    );
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const v = rootView(r.json!.container!.stdout!);
    expect(v).toMatchObject({ majorMinor: v.dev, fsType: 'ext4', dmName: 'dm-verity', ro: '1', slaves: ['vda1', 'vda2'] });
    expect(v.cmdline).toMatch(/verity 1 \/dev\/vda1 \/dev\/vda2 /);
  });

  it('erofs, from a configuration.toml carrying kernel_verity_params as Kata writes it', async () => {
    const cfg = join(dir, 'configuration.toml');
    await writeFile(
      cfg,
      `[hypervisor.qemu]\nkernel = "${kernel.bzImage}"\nimage = "${erofs.path}"\nrootfs_type = "erofs"\nkernel_verity_params = "${erofs.params}"\ndefault_memory = 512\n[agent.kata]\ndial_timeout = 300\n`,
    );
    const r = await bootJson(vmName(), kernel.bzImage, ['--config', cfg, ...GUEST_VIEW], ROOT_VIEW);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const v = rootView(r.json!.container!.stdout!);
    expect(v).toMatchObject({ majorMinor: v.dev, fsType: 'erofs', dmName: 'dm-verity', ro: '1', slaves: ['pmem0p1', 'pmem0p2'] });
    expect(v.cmdline).toContain('root=/dev/dm-0 rootflags=ro rootfstype=erofs');
  });
});

describe('a modified image or the wrong root hash is refused', () => {
  it('one byte flipped inside a file: reading it fails in the guest and the boot is VERITY_FAILED naming the corrupted block', async () => {
    const bad = join(dir, 'tampered.img');
    await copyFile(ext4.path, bad);
    // Where /etc/os-release's data lives, from the filesystem itself (debugfs reads the partition at its offset).
    const bmap = await execa('debugfs', ['-R', 'bmap /etc/os-release 0', `${bad}?offset=${ext4.rootStart}`]);
    const block = Number(String(bmap.stdout).trim());
    expect(block).toBeGreaterThan(0);
    const at = ext4.rootStart + block * 4096 + 6;
    const fh = await open(bad, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    expect(b.toString()).toBe('o'); // NAME="osbuilder busybox test": the file's own bytes
    b[0] = b[0]! ^ 0x20;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const r = await bootJson<CliErrorJson>(
      vmName(),
      kernel.bzImage,
      ['--image', bad, '--kernel-verity-params', ext4.params, '--guest-mount', '/etc/os-release:/guest/os-release'],
      ['cat', '/guest/os-release'],
    );
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error.code).toBe('VERITY_FAILED');
    expect(r.json!.error.message).toMatch(/^dm-verity verification of the root image failed: device-mapper: verity: [\d:]+: data block \d+ is corrupted/);
    expect(r.json!.error.hint).toMatch(/does not match kernel_verity_params/);
  });

  it('a wrong root_hash: the root cannot be mounted, VERITY_FAILED says verification failed (no hang)', async () => {
    const wrong = ext4.params.replace(/root_hash=[0-9a-f]{64}/, `root_hash=${'0'.repeat(64)}`);
    const r = await bootJson<CliErrorJson>(vmName(), kernel.bzImage, ['--image', ext4.path, '--kernel-verity-params', wrong], ['true']);
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error.code).toBe('VERITY_FAILED');
    expect(r.json!.error.message).toMatch(/^dm-verity verification of the root image failed: device-mapper: verity: [\d:]+: metadata block \d+ is corrupted/);
    expect(r.json!.error.message).toMatch(/Kernel panic - not syncing/);
  });

  it('a malformed kernel_verity_params is refused before any VM starts', async () => {
    const params = 'root_hash=abcd,salt=00,data_blocks=x,data_block_size=4096,hash_block_size=4096';
    const r = await bootJson<CliErrorJson>(vmName(), kernel.bzImage, ['--image', ext4.path, '--kernel-verity-params', params], ['true']);
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error).toMatchObject({ code: 'CONFIG_INVALID', message: '--kernel-verity-params: data_blocks "x" is not a whole number' });
  });
});
