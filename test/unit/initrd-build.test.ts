/**
 * The initrd stage around the writer: codec choices and their argv, the /init
 * check, verification of a written archive, and buildInitrd end to end on a
 * small tree with the local compressors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '../support/fixtures.js';
import {
  buildInitrd,
  checkInit,
  CODECS,
  COMPRESSIONS,
  DEFAULT_COMPRESSION,
  KERNEL_DECOMPRESSOR_CONFIG,
  kernelConfigFor,
  resolveCompression,
  readNewc,
  planEntries,
  archiveChunks,
  type WriteStats,
} from '../../initrd-builder/index.js';
import { verifyInitrd } from '../../initrd-builder/verify.js';

describe('compression choices', () => {
  it('defaults to zstd -3 and validates names and levels', () => {
    expect(DEFAULT_COMPRESSION).toBe('zstd');
    expect(resolveCompression('zstd', undefined)).toEqual({ compression: 'zstd', level: 3 });
    expect(resolveCompression('gzip', undefined)).toEqual({ compression: 'gzip', level: 9 });
    expect(resolveCompression('xz', 0)).toEqual({ compression: 'xz', level: 0 });
    expect(resolveCompression('none', undefined)).toEqual({ compression: 'none', level: undefined });
    expect(() => resolveCompression('bzip2', undefined)).toThrow(
      expect.objectContaining({ code: 'USAGE', hint: expect.stringContaining('zstd, gzip, xz, lz4, none') }),
    );
    for (const bad of [0, 20, 2.5, Number.NaN]) expect(() => resolveCompression('zstd', bad)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => resolveCompression('lz4', 13)).toThrow(expect.objectContaining({ hint: expect.stringContaining('from 1 to 12') }));
    expect(() => resolveCompression('none', 3)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('passes the options the kernel decompressors need', () => {
    expect(CODECS.zstd.compress('zstd', 3)).toEqual(['-q', '-c', '-3', '-T0']);
    expect(CODECS.xz.compress('xz', 6)).toContain('--check=crc32');
    expect(CODECS.lz4.compress('lz4', 9)).toContain('-l');
    expect(CODECS.gzip.compress('pigz', 9)).toEqual(['-c', '-n', '-9']);
    expect(CODECS.gzip.tools).toEqual(['pigz', 'gzip']);
  });

  it('maps each codec to the kernel option that unpacks it', () => {
    expect(KERNEL_DECOMPRESSOR_CONFIG).toEqual({ zstd: 'CONFIG_RD_ZSTD', gzip: 'CONFIG_RD_GZIP', xz: 'CONFIG_RD_XZ', lz4: 'CONFIG_RD_LZ4', none: undefined });
    expect(kernelConfigFor('zstd')).toEqual(['CONFIG_BLK_DEV_INITRD', 'CONFIG_RD_ZSTD']);
    expect(kernelConfigFor('none')).toEqual(['CONFIG_BLK_DEV_INITRD']);
  });
});

describe('/init check', () => {
  let root: string;
  beforeAll(async () => {
    root = await makeTempDir('osb-initrd-init-');
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  const fresh = async (name: string) => {
    const dir = join(root, name);
    await mkdir(join(dir, 'usr/bin'), { recursive: true });
    await writeFile(join(dir, 'usr/bin/kata-agent'), '#!/bin/sh\n', { mode: 0o755 });
    return dir;
  };

  it('accepts an executable /init, or a link to the agent resolved inside the rootfs', async () => {
    const a = await fresh('file');
    await writeFile(join(a, 'init'), '#!/bin/sh\n', { mode: 0o755 });
    expect(await checkInit(a)).toBe('/init');
    const b = await fresh('abs-link');
    await symlink('/usr/bin/kata-agent', join(b, 'init'));
    expect(await checkInit(b)).toBe('/usr/bin/kata-agent');
    const c = await fresh('rel-link');
    await mkdir(join(c, 'sbin'));
    await symlink('../usr/bin/kata-agent', join(c, 'sbin/init'));
    await symlink('sbin/init', join(c, 'init'));
    expect(await checkInit(c)).toBe('/usr/bin/kata-agent');
  });

  it('refuses a missing, dangling, non-file or non-executable /init with MISSING_INIT and the --agent-init hint', async () => {
    const missing = await fresh('missing');
    await expect(checkInit(missing)).rejects.toMatchObject({
      code: 'MISSING_INIT',
      message: expect.stringContaining('no /init'),
      hint: expect.stringContaining('--agent-init'),
    });
    const dangling = await fresh('dangling');
    // exists on the host, not in the rootfs: must not count
    await symlink('/bin/sh', join(dangling, 'init'));
    await expect(checkInit(dangling)).rejects.toMatchObject({ code: 'MISSING_INIT', message: expect.stringContaining('does not resolve') });
    const dir = await fresh('dir');
    await mkdir(join(dir, 'init'));
    await expect(checkInit(dir)).rejects.toMatchObject({ code: 'MISSING_INIT', message: expect.stringContaining('not a regular file') });
    const noexec = await fresh('noexec');
    await writeFile(join(noexec, 'init'), 'x', { mode: 0o644 });
    await expect(checkInit(noexec)).rejects.toMatchObject({ code: 'MISSING_INIT', message: expect.stringContaining('not executable') });
  });
});

describe('verification of a written archive', () => {
  let root: string;
  let work: string;
  beforeAll(async () => {
    work = await makeTempDir('osb-initrd-verify-');
    root = join(work, 'root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'init'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(root, 'etc/hostname'), 'guest\n');
    await symlink('hostname', join(root, 'etc/name'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const write = async (file: string) => {
    const stats: WriteStats = { entries: 0, bytes: 0, crc32: 0 };
    const parts: Buffer[] = [];
    for await (const c of archiveChunks(planEntries(root), stats)) parts.push(c);
    await writeFile(file, Buffer.concat(parts));
    return stats;
  };

  /** The VERIFY_FAILED message (so a mismatch shows the whole text). */
  const failure = async (p: Promise<void>): Promise<string> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'VERIFY_FAILED' });
    return (err as Error).message;
  };

  it('passes for an intact archive and fails on a flipped byte, a changed or an added rootfs entry', async () => {
    const file = join(work, 'a.cpio');
    const stats = await write(file);
    await verifyInitrd(file, 'none', undefined, root, {}, stats);

    const bytes = await readFile(file);
    const flipped = Buffer.from(bytes);
    const at = bytes.indexOf('guest');
    flipped[at] = 'G'.charCodeAt(0);
    await writeFile(file, flipped);
    expect(await failure(verifyInitrd(file, 'none', undefined, root, {}, stats))).toMatch(/CRC-32/);

    await writeFile(file, bytes);
    await utimes(join(root, 'etc/hostname'), 1_000_000, 1_000_000);
    expect(await failure(verifyInitrd(file, 'none', undefined, root, {}, stats))).toMatch(
      /entry \d+ \(etc\/hostname\) differs from the rootfs: mtime \d+ != 1000000$/,
    );

    const again = await write(file);
    const before = await stat(root);
    await writeFile(join(root, 'zz-new'), 'x');
    await utimes(root, before.atime, before.mtime); // so the first difference is the new entry itself
    expect(await failure(verifyInitrd(file, 'none', undefined, root, {}, again))).toMatch(/zz-new/);
    await rm(join(root, 'zz-new'));
    await utimes(root, before.atime, before.mtime);

    const cut = (await readFile(file)).subarray(0, 200);
    await writeFile(file, cut);
    expect(await failure(verifyInitrd(file, 'none', undefined, root, {}, again))).toMatch(/does not parse back/);
  });

  it('reports a compressor that cannot decode the file', async () => {
    const file = join(work, 'b.zst');
    await writeFile(file, 'not zstd at all');
    await expect(verifyInitrd(file, 'zstd', 'zstd', root, {}, { entries: 1, bytes: 1, crc32: 0 })).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
  });
});

describe('buildInitrd', () => {
  let work: string;
  let root: string;
  beforeAll(async () => {
    work = await makeTempDir('osb-initrd-');
    root = join(work, 'root');
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'usr/bin/kata-agent'), Buffer.alloc(300_000, 7), { mode: 0o755 });
    await symlink('/usr/bin/kata-agent', join(root, 'init'));
    await writeFile(join(root, 'data'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 251)));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  for (const compression of COMPRESSIONS) {
    it(`writes and verifies a ${compression} initrd that the real tool decompresses to our entries`, async () => {
      const output = join(work, `out.${compression}`);
      const r = await buildInitrd({ rootfs: root, output, compression, sourceDateEpoch: 1_700_000_000 });
      expect(r).toMatchObject({ path: output, compression, entries: 6, level: compression === 'none' ? null : CODECS[compression as 'zstd'].levels.default });
      const raw =
        compression === 'none'
          ? await readFile(output)
          : Buffer.from((await execa(CODECS[compression].tools.at(-1)!, ['-d', '-c', output], { encoding: 'buffer' })).stdout);
      expect(raw.length).toBe(r.uncompressedBytes);
      const names: string[] = [];
      async function* src() {
        yield raw;
      }
      for await (const e of readNewc(src())) names.push(e.name);
      expect(names).toEqual(['.', 'data', 'init', 'usr', 'usr/bin', 'usr/bin/kata-agent']);
      const { sha256File } = await import('../../core/hash.js');
      expect(r.sha256).toBe(await sha256File(output));
      expect((await readdir(work)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('leaves nothing at the output path when it fails', async () => {
    const bare = join(work, 'bare');
    await mkdir(bare);
    await chmod(bare, 0o755);
    const output = join(work, 'fail.img');
    await expect(buildInitrd({ rootfs: bare, output })).rejects.toMatchObject({ code: 'MISSING_INIT' });
    await expect(buildInitrd({ rootfs: root, output: join(root, 'inside.img') })).rejects.toMatchObject({ code: 'OUTPUT_INVALID' });
    expect((await readdir(work)).filter((f) => f.startsWith('fail') || f.includes('.tmp-'))).toEqual([]);
  });

  it('-o <existing directory>: the hint names an initrd file in it, and building to that path succeeds', async () => {
    const outDir = join(work, 'out-dir');
    await mkdir(outDir);
    const err = await buildInitrd({ rootfs: root, output: outDir }).then(
      () => undefined,
      (e: unknown) => e as { code: string; hint: string },
    );
    expect(err).toMatchObject({ code: 'OUTPUT_INVALID' });
    const hinted = /^give a file name, e\.g\. -o (\S+)$/.exec(err!.hint)?.[1];
    expect(hinted).toBe(join(outDir, 'kata-containers-initrd.img'));
    const r = await buildInitrd({ rootfs: root, output: hinted!, compression: 'none' });
    expect(r.path).toBe(hinted);
    expect((await stat(hinted!)).isFile()).toBe(true);
  });
});
