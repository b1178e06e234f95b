/**
 * `osbuilder build` with a stage option: `--fs-type erofs` makes the image an
 * erofs one end to end (image stage, cache key, boot test, install, the
 * installed configuration-qemu.toml booting it, a partial build keeping it). The cache is fresh for this
 * file; only the kernel entry is seeded from the suite's kernel
 * (test/support/kernel.ts), so no kernel is built here.
 */
import { execa } from 'execa';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { guestKernel, KERNEL_SDE, seedKernelEntry, type GuestKernel } from '../support/kernel.js';
import { nothingLeft } from '../support/vm-left.js';
import { sha256File } from '../../core/hash.js';
import type { BootResult } from '../../runtime/index.js';

let work: string;
let kernel: GuestKernel;
let env: Record<string, string>;
const prefix = () => join(work, 'prefix');
const share = () => join(prefix(), 'usr/share/kata-containers');
const config = () => join(prefix(), 'usr/share/defaults/kata-containers/configuration-qemu.toml');

interface BuildJson {
  install: string;
  rows: Array<{ artifact: string; cached: boolean }>;
  bootTests: Array<{ artifact: string; passed: boolean; cached: boolean; root: string; osRelease: string }>;
}

async function build(args: string[]): Promise<{ exitCode: number; stderr: string; json: BuildJson }> {
  const r = await runCli(['build', ...args, '--json'], { env, timeout: 40 * 60_000 });
  return { exitCode: r.exitCode, stderr: r.stderr, json: r.json as BuildJson };
}

/** The 4 bytes where a filesystem's magic sits: erofs at 1024 into the partition, little-endian. */
async function magicAt(file: string, offset: number): Promise<number> {
  const f = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    await f.read(b, 0, 4, offset);
    return b.readUInt32LE(0);
  } finally {
    await f.close();
  }
}

const EROFS_SUPER_MAGIC_V1 = 0xe0f5e1e2;
/** Kata's DAX layout: the root partition starts at 3 MiB. */
const ROOT_START = 3 * 1024 * 1024;

beforeAll(async () => {
  work = await makeTempDir('osb-build-options-');
  const cacheDir = join(work, 'cache');
  kernel = await guestKernel();
  await seedKernelEntry(cacheDir);
  env = { OSBUILDER_CACHE_DIR: cacheDir, SOURCE_DATE_EPOCH: KERNEL_SDE };
});

afterAll(async () => {
  await execa('rm', ['-rf', work]);
});

describe('osbuilder build --fs-type erofs', () => {
  it('builds an erofs debian image, boot-tests it with the cached kernel and installs it with rootfs_type = "erofs"', async () => {
    const r = await build(['--image', '--kernel', '--fs-type', 'erofs', '--prefix', prefix(), '--boot-timeout', '600']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json.install).toBe('installed');
    expect(r.json.rows.map((x) => [x.artifact, x.cached])).toEqual([
      ['kata-debian-bookworm.image', false],
      [`vmlinuz-${kernel.version}-${kernel.configVersion}`, true], // seeded: no kernel build
    ]);
    expect(r.json.bootTests).toEqual([
      expect.objectContaining({
        artifact: 'kata-debian-bookworm.image',
        passed: true,
        cached: false,
        root: '/dev/pmem0p1',
        osRelease: 'Debian GNU/Linux 12 (bookworm)',
      }),
    ]);

    const image = join(share(), 'kata-debian-bookworm.image');
    expect((await magicAt(image, ROOT_START + 1024)).toString(16)).toBe(EROFS_SUPER_MAGIC_V1.toString(16));
    const toml = await readFile(config(), 'utf8');
    expect(toml).toContain('rootfs_type = "erofs"');
    expect(toml).toContain('disable_image_nvdimm = false');
    const m = JSON.parse(await readFile(join(share(), 'manifest.json'), 'utf8'));
    expect(m.rootfs[0]).toMatchObject({ role: 'image', sha256: await sha256File(image) });
    expect(m.rootfs[0].inputs.artifact).toBe('erofs,dax,mbr');
    const sums = await execa('sha256sum', ['-c', 'usr/share/kata-containers/SHA256SUMS'], { cwd: prefix(), reject: false });
    expect(sums.exitCode, String(sums.stdout)).toBe(0);
  });

  it('boots from the installed configuration-qemu.toml: the guest root is erofs on pmem0p1, read-only', async () => {
    const name = `osb-build-options-${process.pid}`;
    const view = ['sh', '-c', 'grep " / / " /guest/proc/1/mountinfo; cat /proc/cmdline'];
    const r = await runCli<BootResult>(
      ['boot', '--json', '--name', name, '--config', config(), '--timeout', '600', '--guest-mount', '/proc:/guest/proc', '--', ...view],
      { timeout: 15 * 60_000 },
    );
    await nothingLeft(name);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    const [mount, cmdline] = String(r.json!.container!.stdout).split('\n');
    // mountinfo: id parent major:minor root mountpoint options ... - fstype source superoptions
    const f = mount!.split(' ');
    expect(f[f.indexOf('-') + 1]).toBe('erofs');
    expect(f[5]!.split(',')).toContain('ro');
    expect(cmdline).toContain('root=/dev/pmem0p1 rootflags=dax ro rootfstype=erofs');
  });

  it('the same build again is a cache hit: the erofs image has its own key', async () => {
    const before = await sha256File(join(share(), 'manifest.json'));
    const r = await build(['--image', '--kernel', '--fs-type', 'erofs', '--prefix', prefix()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json.install).toBe('unchanged');
    expect(r.json.rows.every((x) => x.cached)).toBe(true);
    expect(r.json.bootTests.every((b) => b.cached && b.passed)).toBe(true);
    expect(await sha256File(join(share(), 'manifest.json'))).toBe(before);
  });

  it('a partial build keeping the erofs image (--kernel alone) still configures it as erofs, from the manifest', async () => {
    const r = await build(['--kernel', '--no-boot-test', '--prefix', prefix(), '-f']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await readFile(config(), 'utf8')).toContain('rootfs_type = "erofs"');
    const m = JSON.parse(await readFile(join(share(), 'manifest.json'), 'utf8'));
    expect(m.rootfs).toEqual([]);
    expect(m.keptRootfs).toEqual([expect.objectContaining({ role: 'image', file: 'kata-debian-bookworm.image' })]);
  });
});
