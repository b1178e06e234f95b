/**
 * Real source, real `make olddefconfig`: Debian's linux-source-6.1 tarball set up
 * through the CLI, the default and nvidia configs verified, and every bad input
 * of the issue rejected with its error code and nothing half-written.
 */
import { copyFile, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli as runCliIn, type CliErrorJson } from '../support/cli.js';
import type { ConfigDiff, ConfigResult, SetupResult, VerifyReport } from '../../kernel/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { LINUX_SOURCE_TARBALL, sourceSha256 } from '../support/kernel.js';
import { sha256File } from '../../core/hash.js';

let work: string;
let tree: string;
let sha: string;

/** The CLI with this file's own build cache (its memo of proven configs): nothing proven elsewhere is reused. */
const runCli = <T = unknown>(args: string[], opts: Parameters<typeof runCliIn>[1] = {}) =>
  runCliIn<T>(args, { ...opts, env: { OSBUILDER_CACHE_DIR: join(work, 'cache'), ...opts.env } });

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

function expectError(r: { exitCode: number; stderr: string }, code: string): void {
  expect(r.exitCode, r.stderr).not.toBe(0);
  expect(r.stderr).toContain(`error[${code}]`);
  expect(r.stderr).toContain('hint:');
}

beforeAll(async () => {
  work = await makeTempDir('osb-kernel-cfg-');
  tree = join(work, 'tree');
  sha = await sourceSha256();
});

describe('kernel setup/config on linux-source-6.1', () => {
  it('sets up the default x86_64 tree: extracted, verified, .config written, state recorded', async () => {
    const r = await runCli<SetupResult>(
      ['kernel', 'setup', '-v', '6.1', '--source', LINUX_SOURCE_TARBALL, '--sha256', sha, '-a', 'x86_64', '-k', tree, '--json'],
      { timeout: 15 * 60_000 },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.version).toMatch(/^6\.1\.\d+$/);
    expect(j.source).toMatchObject({ sha256: sha, reused: false });
    expect(j.verify.ok).toBe(true);
    expect(j.verify.present).toBe(j.verify.requested);
    expect(j.verify.dropped).toEqual([]);
    const config = await readFile(join(tree, '.config'), 'utf8');
    for (const line of [
      'CONFIG_64BIT=y',
      'CONFIG_VIRTIO_BLK=y',
      'CONFIG_VIRTIO_VSOCKETS=y',
      'CONFIG_EXT4_FS=y',
      'CONFIG_LIBNVDIMM=y',
      'CONFIG_ACPI_NFIT=y',
      'CONFIG_FS_DAX=y',
      'CONFIG_BLK_DEV_PMEM=y',
      'CONFIG_CGROUP_BPF=y',
      '# CONFIG_MODULES is not set',
    ]) {
      expect(config).toContain(line);
    }
    expect(config).toContain(`CONFIG_LOCALVERSION="-kata"`);
    const state = JSON.parse(await readFile(join(tree, '.osbuilder/state.json'), 'utf8'));
    expect(state).toMatchObject({ arch: 'x86_64', version: j.version, source: { sha256: sha, topDir: 'linux-source-6.1' } });
    expect(await sha256File(join(tree, '.config'))).toBe(state.configSha256);
    // Debian's tarball has a single top dir; it was stripped.
    expect(await exists(join(tree, 'Makefile'))).toBe(true);
    expect(await exists(join(tree, 'linux-source-6.1'))).toBe(false);
  });

  it('setup again reuses the tree and leaves an identical .config alone', async () => {
    const before = (await stat(join(tree, '.config'))).mtimeMs;
    const r = await runCli<SetupResult>(['kernel', 'setup', '-v', '6.1', '--source', LINUX_SOURCE_TARBALL, '--sha256', sha, '-k', tree, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.source.reused).toBe(true);
    expect((await stat(join(tree, '.config'))).mtimeMs).toBe(before);
  });

  it('a proven config is reused while recipe and tree files are unchanged; a changed Kconfig is proven again and caught', async () => {
    const cache = await makeTempDir('osb-kcfg-memo-');
    const out = join(work, 'proven.config');
    const config = (json = true) =>
      runCli<ConfigResult>(['kernel', 'config', '-v', '6.1', '-k', tree, '-o', out, ...(json ? ['--json'] : [])], { env: { OSBUILDER_CACHE_DIR: cache } });
    const expectReused = async (reused: boolean) => {
      const r = await config();
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.json!.verify).toMatchObject({ ok: true, reused });
      expect(await readFile(out, 'utf8')).toBe(await readFile(join(tree, '.config'), 'utf8'));
    };
    await expectReused(true); // setup proved it in this tree

    // VIRTIO_BLK's dependency made unmeetable: only a real olddefconfig shows it dropped.
    const kconfig = join(tree, 'drivers/block/Kconfig');
    const text = await readFile(kconfig, 'utf8');
    expect(text).toContain('config VIRTIO_BLK\n\ttristate "Virtio block driver"\n\tdepends on VIRTIO\n');
    await writeFile(kconfig, text.replace('"Virtio block driver"\n\tdepends on VIRTIO\n', '"Virtio block driver"\n\tdepends on VIRTIO && BROKEN\n'));
    try {
      const broken = await config(false);
      expectError(broken, 'KERNEL_OPTION_DROPPED');
      expect(broken.stderr).toContain('CONFIG_VIRTIO_BLK=y');
    } finally {
      await writeFile(kconfig, text);
    }
    await expectReused(true); // the tree's files hash as when it was proven

    // Without the tree's record: proven again, and the memo then serves a tree without one.
    const dropRecords = async () => {
      for (const f of await readdir(join(tree, '.osbuilder'))) if (f.startsWith('proven.')) await rm(join(tree, '.osbuilder', f));
    };
    await dropRecords();
    await expectReused(false);
    await dropRecords();
    await expectReused(true);
  });

  it('config -g nvidia verifies the GPU variant and writes it only to -o', async () => {
    const out = join(work, 'nvidia.config');
    const dotBefore = await sha256File(join(tree, '.config'));
    const r = await runCli<ConfigResult>(['kernel', 'config', '-v', '6.1', '-g', 'nvidia', '-k', tree, '-o', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.verify.ok).toBe(true);
    expect(r.json!.variant).toBe('nvidia-gpu');
    expect(r.json!.report.present.map((p: { symbol: string }) => p.symbol)).toEqual(
      expect.arrayContaining(['MODULES', 'MODULE_UNLOAD', 'HOTPLUG_PCI_PCIE', 'HOTPLUG_PCI_SHPC', 'PCI_MMCONFIG', 'DRM_NOUVEAU', 'VFIO_PCI']),
    );
    expect(r.json!.verify.overrides).toEqual([
      { symbol: 'MODULES', from: expect.stringContaining('common/base.conf'), to: expect.stringContaining('gpu/nvidia/nvidia.conf') },
      { symbol: 'CRYPTO_FIPS', from: expect.stringContaining('common/crypto.conf'), to: expect.stringContaining('gpu/nvidia/nvidia.conf') },
    ]);
    const cfg = await readFile(out, 'utf8');
    expect(cfg).toContain('CONFIG_MODULES=y');
    expect(cfg).toContain('CONFIG_VFIO_PCI=y');
    expect(cfg).not.toMatch(/^CONFIG_DRM_NOUVEAU=/m);
    expect(await sha256File(join(tree, '.config'))).toBe(dotBefore);
  });

  it('config -o - prints the verified config on stdout and the report on stderr', async () => {
    const r = await runCli(['kernel', 'config', '-v', '6.1', '-k', tree, '-o', '-']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe((await readFile(join(tree, '.config'), 'utf8')).trimEnd());
    expect(r.stderr).toMatch(/^config for Linux 6\.1\.\d+ x86_64 default .*: verified$/m);
  });

  it('diff ours <tree>/.config -k <tree>: our resolved config is the one setup wrote, grouped by the Kconfig menus of the tree', async () => {
    const r = await runCli<ConfigDiff>(['kernel', 'diff', 'ours', join(tree, '.config'), '-a', 'x86_64', '-k', tree, '--json'], { timeout: 5 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.left).toMatchObject({ source: 'ours', kind: 'ours-resolved', detail: expect.stringContaining(`make olddefconfig in ${tree} (Linux 6.1.`) });
    expect(r.json!.right).toMatchObject({ source: join(tree, '.config'), kind: 'config' });
    expect(r.json!.grouping).toEqual({ by: 'kconfig', tree, from: '--kernel-dir' });
    expect(r.json!.groups).toEqual([]);
    expect(r.json!.counts).toMatchObject({ onlyLeft: 0, onlyRight: 0, differ: 0 });
    expect(r.json!.counts.same).toBeGreaterThan(500);
  });

  it('config --json with a dropped option prints {"error": {...}} listing the failed options with their reasons, exits 1, writes no -o file', async () => {
    const frag = join(work, 'drop.conf');
    const out = join(work, 'drop.config');
    await writeFile(frag, '# CONFIG_ACPI is not set\nCONFIG_ACPI_NFIT=y\n');
    const r = await runCli<CliErrorJson>(['kernel', 'config', '-v', '6.1', '-k', tree, '--fragment', frag, '-o', out, '--json']);
    expect(r.exitCode).toBe(1);
    expect(Object.keys(r.json!)).toEqual(['error']);
    const e = r.json!.error;
    expect(e.code).toBe('KERNEL_OPTION_DROPPED');
    expect(e.message).toContain(`CONFIG_ACPI_NFIT=y  (${frag}:2) -> not set`);
    expect(e.hint).toContain('error.details');
    const details = e.details as Pick<VerifyReport, 'dropped' | 'unknown'>;
    expect(details.unknown).toEqual([]);
    const nfit = details.dropped.find((d) => d.symbol === 'ACPI_NFIT')!;
    expect(nfit).toMatchObject({ requested: 'y', actual: 'n', status: 'dropped', from: `${frag}:2` });
    expect(nfit.reasons[0]).toMatchObject({ kind: 'depends', at: 'drivers/acpi/Kconfig:43' });
    expect(nfit.reasons[0]!.text).toContain(`ACPI=n (requested in ${frag})`);
    // Some reliant options of the default fragments drop too: each is in the message and carries its reasons.
    for (const d of details.dropped) {
      expect(e.message, d.symbol).toContain(`(${d.from}) ->`);
      expect(d.reasons.length, d.symbol).toBeGreaterThan(0);
    }
    expect(await exists(out)).toBe(false);
  });

  // Kconfig asks the compiler what it can do, so each arch is resolved with Debian's cross gcc (setup installs them).
  it.each([
    { name: 'aarch64', arch: 'aarch64', gpu: [], cc: 'aarch64-linux-gnu-gcc', marker: 'CONFIG_ARM64=y', fragment: 'arm64/acpi.conf' },
    {
      name: 'aarch64 -g nvidia',
      arch: 'aarch64',
      gpu: ['-g', 'nvidia'],
      cc: 'aarch64-linux-gnu-gcc',
      marker: 'CONFIG_VFIO_PCI=y',
      fragment: 'gpu/nvidia/nvidia.conf',
    },
    { name: 'ppc64le', arch: 'ppc64le', gpu: [], cc: 'powerpc64le-linux-gnu-gcc', marker: 'CONFIG_CPU_LITTLE_ENDIAN=y', fragment: 'ppc64le/base.conf' },
    { name: 's390x', arch: 's390x', gpu: [], cc: 's390x-linux-gnu-gcc', marker: 'CONFIG_S390=y', fragment: 's390/base.conf' },
  ])('$name: every requested option survives olddefconfig with $cc', async ({ arch, gpu, cc, marker, fragment }) => {
    const out = join(work, `config-${arch}${gpu.length ? '-nvidia' : ''}`);
    const r = await runCli<ConfigResult>(['kernel', 'config', '-v', '6.1', '-a', arch, ...gpu, '-k', tree, '-o', out, '--json'], { timeout: 5 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.arch).toBe(arch);
    expect(r.json!.fragments).toContain(fragment);
    expect(r.json!.verify).toMatchObject({ ok: true, dropped: [], unknown: [] });
    expect(r.json!.verify.present).toBe(r.json!.verify.requested);
    const config = await readFile(out, 'utf8');
    expect(config).toMatch(new RegExp(`^CONFIG_CC_VERSION_TEXT="${cc} \\(Debian`, 'm'));
    expect(config).toContain(`\n${marker}\n`);
  });
});

describe('kernel bad input (CLI)', () => {
  it('dropped option: setup fails with KERNEL_OPTION_DROPPED naming the unmet dependency; .config untouched', async () => {
    const frag = join(work, 'drop2.conf');
    await writeFile(frag, '# CONFIG_ACPI is not set\nCONFIG_ACPI_NFIT=y\n');
    const before = await sha256File(join(tree, '.config'));
    const r = await runCli(['kernel', 'setup', '-v', '6.1', '-k', tree, '--fragment', frag]);
    expectError(r, 'KERNEL_OPTION_DROPPED');
    expect(r.stderr).toContain(`CONFIG_ACPI_NFIT=y  (${frag}:2) -> not set`);
    expect(r.stderr).toMatch(/inside "if" ACPI = n: ACPI=n .*\[drivers\/acpi\/Kconfig:43\]/);
    expect(await sha256File(join(tree, '.config'))).toBe(before);
  });

  it('unknown symbol in a fragment: KERNEL_SYMBOL_UNKNOWN; .config untouched', async () => {
    const frag = join(work, 'typo.conf');
    await writeFile(frag, 'CONFIG_VIRTIO_BLKK=y\nCONFIG_ARM64_PMEM=y\n');
    const before = await sha256File(join(tree, '.config'));
    const r = await runCli(['kernel', 'setup', '-v', '6.1', '-k', tree, '--fragment', frag]);
    expectError(r, 'KERNEL_SYMBOL_UNKNOWN');
    expect(r.stderr).toContain(`CONFIG_VIRTIO_BLKK (${frag}:1): no Kconfig file in this source defines it`);
    expect(r.stderr).toMatch(/CONFIG_ARM64_PMEM \(.*:2\): not defined for ARCH=x86_64; defined in arch\/arm64\/Kconfig:\d+/);
    expect(await sha256File(join(tree, '.config'))).toBe(before);
  });

  it('unknown arch and malformed version are refused before anything is created', async () => {
    const dir = join(work, 'never');
    const a = await runCli(['kernel', 'setup', '-v', '6.1', '-a', 'mips', '--source', LINUX_SOURCE_TARBALL, '-k', dir]);
    expectError(a, 'UNSUPPORTED_ARCH');
    const v = await runCli(['kernel', 'setup', '-v', '6.x', '--source', LINUX_SOURCE_TARBALL, '-k', dir]);
    expectError(v, 'INPUT_INVALID');
    expect(v.stderr).toContain('malformed kernel version');
    const j = await runCli<CliErrorJson>(['kernel', 'setup', '-v', 'latest', '-k', dir, '--json']);
    expect(j.exitCode).toBe(1);
    expect(j.json!.error.code).toBe('INPUT_INVALID');
    expect(await exists(dir)).toBe(false);
  });

  it('missing tarball, checksum mismatch and a corrupt tarball leave no tree behind', async () => {
    const dir = join(work, 'never2');
    const missing = await runCli(['kernel', 'setup', '-v', '6.1', '--source', join(work, 'nope.tar.xz'), '-k', dir]);
    expectError(missing, 'INPUT_NOT_FOUND');
    const mismatch = await runCli(['kernel', 'setup', '-v', '6.1', '--source', LINUX_SOURCE_TARBALL, '--sha256', '0'.repeat(64), '-k', dir]);
    expectError(mismatch, 'CHECKSUM_MISMATCH');
    expect(mismatch.stderr).toContain(`expected ${'0'.repeat(64)}`);
    // The first 4 MiB of the real tarball: a valid xz stream that ends early.
    const cut = join(work, 'linux-cut.tar.xz');
    const fh = await open(LINUX_SOURCE_TARBALL, 'r');
    const buf = Buffer.alloc(4 << 20);
    await fh.read(buf, 0, buf.length, 0);
    await fh.close();
    await writeFile(cut, buf);
    const corrupt = await runCli(['kernel', 'setup', '-v', '6.1', '--source', cut, '-k', dir], { timeout: 5 * 60_000 });
    expectError(corrupt, 'INPUT_INVALID');
    expect(corrupt.stderr).toContain('is not a valid .tar.xz archive');
    expect(await exists(dir)).toBe(false);
    expect((await readdir(work)).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  it('a different tarball for an existing tree needs -f', async () => {
    const other = join(work, 'other.tar.xz');
    await copyFile(LINUX_SOURCE_TARBALL, other);
    await writeFile(other, Buffer.from([0]), { flag: 'a' }); // same content + 1 byte: another sha256
    const r = await runCli(['kernel', 'setup', '-v', '6.1', '--source', other, '-k', tree]);
    expectError(r, 'OUTPUT_EXISTS');
    expect(r.stderr).toContain('pass -f');
  });

  it('the default kernel.org source fails at the network boundary with DOWNLOAD_FAILED', async () => {
    const dir = join(work, 'net');
    const r = await runCli(['kernel', 'setup', '-v', '6.1.62', '-k', dir], {
      env: { ...process.env, OSBUILDER_KERNEL_MIRROR: 'http://127.0.0.1:9/pub/linux/kernel' } as Record<string, string>,
    });
    expectError(r, 'DOWNLOAD_FAILED');
    expect(r.stderr).toContain('http://127.0.0.1:9/pub/linux/kernel/v6.x/sha256sums.asc');
    expect(await exists(dir)).toBe(false);
  });

  it('build and install refuse a tree that was never set up', async () => {
    const dir = await makeTempDir('osb-kernel-empty-');
    const b = await runCli(['kernel', 'build', '-v', '6.1', '-k', dir]);
    expectError(b, 'INPUT_NOT_FOUND');
    const i = await runCli(['kernel', 'install', '-v', '6.1', '-k', dir, '--prefix', join(dir, 'p')]);
    expectError(i, 'INPUT_NOT_FOUND');
    expect(await exists(join(dir, 'p'))).toBe(false);
  });
});
