/**
 * `osbuilder initrd` through the compiled CLI (npm run build first), with the
 * real compressors, GNU cpio and QEMU: bad input, busybox and Debian minbase
 * trees listed and extracted back by `cpio`, byte-identical rebuilds under
 * SOURCE_DATE_EPOCH, flat memory on a large tree, and real boots of Debian's
 * cloud kernel with our initrds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { lstat, mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, runCli } from '../support/cli.js';
import type { InitrdResult } from '../../initrd-builder/index.js';
import { debianCloudKernel, makeBusyboxRootfs, makeTempDir } from '../support/fixtures.js';
import { bootInitrd, cpioExtract, cpioList, debianMinbaseWithInit, decompressTo, dfsOrder, INIT_MARKER, snapshot, snapshotDiff } from '../support/initrd.js';

const CODECS = ['zstd', 'gzip', 'xz', 'lz4', 'none'] as const;
const EPOCH = 1_700_000_000;

let work: string;
let busybox: string;

beforeAll(async () => {
  work = await makeTempDir('osb-initrd-it-');
  busybox = await makeBusyboxRootfs(join(work, 'busybox'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function leftovers(dir: string, base: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes(base));
}

describe('osbuilder initrd refuses bad input', () => {
  async function expectFailure(args: string[], code: string, message: RegExp, out: string): Promise<{ stderr: string }> {
    const r = await runCli(['initrd', ...args]);
    expect(r.exitCode, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^error\\[${code}\\]: `, 'm'));
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^ {2}hint: \S/m);
    const dir = join(out, '..');
    const base = out.split('/').pop()!;
    if ((await stat(dir).catch(() => undefined))?.isDirectory()) {
      const left = await leftovers(dir, base);
      // an output path that is a directory stays what it was: a directory, no temp beside it
      expect(left.filter((n) => n !== base)).toEqual([]);
      const st = await stat(out).catch(() => undefined);
      expect(st === undefined || st.isDirectory()).toBe(true);
    }
    return r;
  }

  it('missing rootfs', async () => {
    const out = join(work, 'e1.img');
    await expectFailure([join(work, 'nope'), '-o', out], 'INPUT_NOT_FOUND', /rootfs .*nope does not exist/, out);
  });

  it('rootfs that is a file', async () => {
    const file = join(work, 'plain-file');
    await writeFile(file, 'x');
    const out = join(work, 'e2.img');
    await expectFailure([file, '-o', out], 'INPUT_INVALID', /is not a directory/, out);
  });

  it('output in a missing directory', async () => {
    const out = join(work, 'no-such-dir', 'e3.img');
    await expectFailure([busybox, '-o', out], 'OUTPUT_INVALID', /output directory .*no-such-dir does not exist/, out);
  });

  it('output path that is a directory', async () => {
    const out = join(work, 'e4-dir');
    await mkdir(out);
    await expectFailure([busybox, '-o', out], 'OUTPUT_INVALID', /is a directory/, out);
    expect(await readdir(out)).toEqual([]);
  });

  it('unknown compression', async () => {
    const out = join(work, 'e5.img');
    await expectFailure([busybox, '-o', out, '--compression', 'bzip2'], 'USAGE', /unknown compression "bzip2"/, out);
  });

  it('bad --level (out of range, not a number)', async () => {
    const out = join(work, 'e6.img');
    await expectFailure([busybox, '-o', out, '--level', '42'], 'USAGE', /--level 42 is not valid for zstd/, out);
    await expectFailure([busybox, '-o', out, '--compression', 'gzip', '--level', 'fast'], 'USAGE', /--level NaN is not valid for gzip/, out);
  });

  it('no /init: MISSING_INIT, the hint says to build the rootfs with the agent as init', async () => {
    const root = await makeBusyboxRootfs(join(work, 'no-init'));
    await rm(join(root, 'init'));
    const out = join(work, 'e7.img');
    const r = await expectFailure([root, '-o', out], 'MISSING_INIT', /has no \/init/, out);
    expect(r.stderr).toMatch(/hint: .*--agent-init/);
  });

  it('--json prints one error object', async () => {
    const out = join(work, 'e8.img');
    const r = await runCli(['initrd', join(work, 'nope'), '-o', out, '--json']);
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({ error: { code: 'INPUT_NOT_FOUND', message: expect.any(String), hint: expect.any(String) } });
    expect(await leftovers(work, 'e8.img')).toEqual([]);
  });
});

describe('busybox rootfs, every compression', () => {
  for (const compression of CODECS) {
    it(`${compression}: cpio -it lists exactly the rootfs, cpio -idm gives back its files`, async () => {
      const out = join(work, `bb.${compression}`);
      const r = await runCli<InitrdResult>(['initrd', busybox, '-o', out, '--compression', compression, '--json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const size = (await stat(out)).size;
      expect(r.json).toEqual({
        path: out,
        compression,
        level: compression === 'none' ? null : expect.any(Number),
        entries: dfsOrder(busybox).length,
        uncompressedBytes: expect.any(Number),
        sizeBytes: size,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      const cpio = join(work, `bb-${compression}.cpio`);
      await decompressTo(out, compression, cpio);
      expect((await stat(cpio)).size).toBe(r.json!.uncompressedBytes);
      expect(await cpioList(cpio)).toEqual(dfsOrder(busybox)); // no hard links: exactly our walk order
      const dest = join(work, `bb-${compression}-x`);
      await mkdir(dest);
      await cpioExtract(cpio, dest);
      expect(snapshotDiff(await snapshot(dest, { mtimes: true }), await snapshot(busybox, { mtimes: true }))).toEqual([]);
    });
  }
});

describe('Debian minbase rootfs', () => {
  let debian: string;
  let first: { path: string; sha256: string; sizeBytes: number; uncompressedBytes: number };

  beforeAll(async () => {
    debian = await debianMinbaseWithInit();
  });

  it('default build (zstd): cpio -it lists exactly the rootfs, cpio -idm gives back its files', async () => {
    const out = join(work, 'debian.initrd');
    const r = await runCli<InitrdResult>(['initrd', debian, '-o', out, '--json'], { env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ path: out, compression: 'zstd', level: 3, entries: dfsOrder(debian).length });
    first = r.json!;
    const cpio = join(work, 'debian.cpio');
    await decompressTo(out, 'zstd', cpio);
    const names = await cpioList(cpio);
    const order = dfsOrder(debian);
    // the same entries; the order is our walk's except that hard links are written together
    expect(names.length).toBe(order.length);
    const a = [...names].sort();
    const b = [...order].sort();
    expect(a.filter((n, i) => n !== b[i]).slice(0, 10)).toEqual([]);
    const dest = join(work, 'debian-x');
    await mkdir(dest);
    await cpioExtract(cpio, dest);
    // owners, modes, contents, link targets, devices (mtimes are clamped here: compared in the next test)
    const got = await snapshot(dest);
    const want = await snapshot(debian);
    expect(got.size).toBe(want.size);
    expect(snapshotDiff(got, want)).toEqual([]);
    await rm(dest, { recursive: true, force: true });
    await rm(cpio, { force: true });
  });

  it('without SOURCE_DATE_EPOCH the archive equals `cpio -o -H newc --reproducible` byte for byte', async () => {
    const out = join(work, 'debian-noclamp.initrd');
    const r = await runCli<InitrdResult>(['initrd', debian, '-o', out, '--compression', 'none', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const gnu = join(work, 'debian-gnu.cpio');
    await execa('sh', ['-c', 'cpio -o -H newc --reproducible --quiet > "$0"', gnu], { cwd: debian, input: `${dfsOrder(debian).join('\n')}\n` });
    expect((await stat(out)).size).toBe((await stat(gnu)).size);
    const cmp = await execa('cmp', [out, gnu], { reject: false });
    expect(cmp.exitCode, cmp.stdout).toBe(0);
    await rm(gnu, { force: true });
    await rm(out, { force: true });
  });

  it('two builds with SOURCE_DATE_EPOCH are byte-identical, even after touching files above the epoch', async () => {
    // entries already newer than the epoch (clamped in the first build), files and directories
    const newer: string[] = [];
    for (const rel of dfsOrder(debian)) {
      const st = await lstat(join(debian, rel));
      if (!st.isSymbolicLink() && st.mtimeMs / 1000 > EPOCH) newer.push(rel);
    }
    const touched = [...newer.filter((r) => r.startsWith('etc/')).slice(0, 20), ...newer.filter((r) => r.startsWith('var/')).slice(0, 20)];
    expect(touched.length).toBeGreaterThan(10);
    const later = Date.now() / 1000 + 3600;
    for (const t of touched) await utimes(join(debian, t), later, later);
    const out = join(work, 'debian-2.initrd');
    const r = await runCli<InitrdResult>(['initrd', debian, '-o', out, '--json'], { env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.sha256).toBe(first.sha256);
    expect((await readFile(out)).equals(await readFile(first.path))).toBe(true);
    // and the clamp is what makes it so: without it, the touched mtimes show
    const loose = await runCli<InitrdResult>(['initrd', debian, '-o', join(work, 'debian-3.initrd'), '--json']);
    expect(loose.json!.sha256).not.toBe(first.sha256);
  });

  it('is not larger than `find . | cpio -H newc -o | gzip -9` (Kata)', async () => {
    const kata = join(work, 'kata.initrd');
    await execa('sh', ['-c', 'find . | cpio -H newc -o --quiet | gzip -9 > "$1"', 'sh', kata], { cwd: debian });
    expect(first.sizeBytes).toBeLessThanOrEqual((await stat(kata)).size);
  });
});

describe('memory stays flat', () => {
  it('a 3 GiB rootfs is archived with a peak RSS far below its size', async () => {
    const root = await makeBusyboxRootfs(join(work, 'large'));
    for (let i = 0; i < 3; i++) {
      await writeFile(join(root, `sparse-${i}`), '');
      await truncate(join(root, `sparse-${i}`), 1024 ** 3); // sparse: costs no disk
    }
    const out = join(work, 'large.initrd');
    const r = await execa('/usr/bin/time', ['-f', 'maxrss_kb=%M', 'node', cliPath, 'initrd', root, '-o', out, '--json'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.uncompressedBytes).toBeGreaterThan(3 * 1024 ** 3);
    const rssKiB = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1]);
    // Buffering the archive would take > 3 GiB; the streaming pipeline stays near Node's baseline.
    expect(rssKiB).toBeGreaterThan(0);
    expect(rssKiB).toBeLessThan(256 * 1024);
    await rm(root, { recursive: true, force: true });
    await rm(out, { force: true });
  });
});

describe('real boot: Debian cloud kernel + our initrd under TCG', () => {
  let kernel: string;
  beforeAll(async () => {
    kernel = await debianCloudKernel();
    // The kernel must carry the decompressor of each codec we boot (our default included).
    const boot = join(kernel, '..');
    const config = (await readdir(boot)).find((f) => f.startsWith('config-'))!;
    const text = await readFile(join(boot, config), 'utf8');
    for (const sym of ['CONFIG_BLK_DEV_INITRD', 'CONFIG_RD_ZSTD', 'CONFIG_RD_GZIP', 'CONFIG_RD_XZ', 'CONFIG_RD_LZ4'])
      expect(text).toMatch(new RegExp(`^${sym}=y$`, 'm'));
  });

  for (const compression of CODECS) {
    it(`busybox /init runs from a ${compression} initrd`, async () => {
      const out = join(work, `boot.${compression}`);
      // xz -0: 256 KiB dictionary, so 768 KiB blocks and a multi-block stream (what xz -T0 writes for large trees)
      const extra = compression === 'xz' ? ['--level', '0'] : [];
      const r = await runCli(['initrd', busybox, '-o', out, '--compression', compression, '--root-owned', ...extra]);
      expect(r.exitCode, r.stderr).toBe(0);
      if (compression === 'xz') {
        const list = await execa('xz', ['--robot', '--list', out]);
        const blocks = Number(/^totals\t\d+\t(\d+)/m.exec(String(list.stdout))?.[1]);
        expect(blocks).toBeGreaterThan(1);
      }
      const boot = await bootInitrd(kernel, out, { timeoutMs: 240_000 });
      expect(boot.output).not.toMatch(/Initramfs unpacking failed|junk in compressed archive|No working init found/);
      expect(boot.markerSeen, boot.output.slice(-3000)).toBe(true);
    });
  }

  it('Debian minbase initrd (default zstd) unpacks and runs its /init', async () => {
    const out = join(work, 'boot-debian.initrd');
    const r = await runCli(['initrd', await debianMinbaseWithInit(), '-o', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    const boot = await bootInitrd(kernel, out, { memoryMiB: 1024, timeoutMs: 300_000 });
    expect(boot.output).not.toMatch(/Initramfs unpacking failed/);
    expect(boot.output).toContain(INIT_MARKER);
  });
});
