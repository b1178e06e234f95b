/**
 * The newc writer on real trees, against GNU cpio: for the same name order
 * (depth-first, bytewise sorted), `cpio -o -H newc --reproducible` (inodes
 * renumbered from 0, device numbers 0) must produce the very same bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createServer, type Server } from 'node:net';
import { chown, link, lutimes, mkdir, rm, symlink, truncate, utimes, writeFile, appendFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../support/fixtures.js';
import { dfsOrder } from '../support/initrd.js';
import { planEntries, type WalkOptions } from '../../initrd-builder/walk.js';
import { archiveChunks, CHUNK, type WriteStats } from '../../initrd-builder/writer.js';
import { readNewcBuffer, type ReadEntry } from '../../initrd-builder/reader.js';
import { makeDev } from '../../initrd-builder/newc.js';
import { OsbuilderError } from '../../core/errors.js';

const isRoot = process.getuid?.() === 0;
const T0 = 1_600_000_000; // fixed mtimes, so GNU cpio and we see the same tree

async function archive(root: string, opts: WalkOptions = {}): Promise<{ bytes: Buffer; stats: WriteStats }> {
  const stats: WriteStats = { entries: 0, bytes: 0, crc32: 0 };
  const parts: Buffer[] = [];
  for await (const c of archiveChunks(planEntries(root, opts), stats)) parts.push(c);
  return { bytes: Buffer.concat(parts), stats };
}

async function gnuCpio(root: string, extra: string[] = []): Promise<Buffer> {
  const r = await execa('cpio', ['-o', '-H', 'newc', '--reproducible', '--quiet', ...extra], {
    cwd: root,
    input: `${dfsOrder(root).join('\n')}\n`,
    encoding: 'buffer',
  });
  return Buffer.from(r.stdout);
}

/** Entry by entry first (a readable diff), then byte for byte. */
async function expectSameArchive(ours: Buffer, gnu: Buffer): Promise<void> {
  const view = async (b: Buffer) => (await readNewcBuffer(b)).map((e) => ({ name: e.name, ...e.header, data: e.data?.toString('hex').slice(0, 64) }));
  expect(await view(ours)).toEqual(await view(gnu));
  expect(ours.length).toBe(gnu.length);
  expect(ours.equals(gnu)).toBe(true);
}

const byName = (entries: ReadEntry[]) => new Map(entries.map((e) => [e.name, e]));

describe('newc writer vs GNU cpio', () => {
  let root: string;
  let outside: string;
  let server: Server | undefined;

  beforeAll(async () => {
    const tmp = await makeTempDir('osb-cpio-');
    root = join(tmp, 'root');
    outside = join(tmp, 'outside');
    for (const d of ['bin', 'etc/ssl', 'usr/lib/x', 'empty', 'dev', 'a', 'a-b', 'B']) await mkdir(join(root, d), { recursive: true });
    // sizes around the 4-byte padding, a page, and across the 1 MiB chunk boundary
    for (const n of [0, 1, 2, 3, 4, 5, 4097]) await writeFile(join(root, 'etc', `f${n}`), Buffer.alloc(n, 0x41 + n));
    await writeFile(join(root, 'usr/lib/big'), Buffer.from(Array.from({ length: CHUNK + 12345 }, (_, i) => (i * 7) & 0xff)));
    await writeFile(join(root, 'usr/lib/x/huge'), Buffer.alloc(3 * CHUNK + 3, 0x5a));
    await writeFile(join(root, 'init'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await writeFile(join(root, 'bin/suid'), 'x', { mode: 0o4755 });
    await symlink('../init', join(root, 'bin/init-rel'));
    await symlink('/usr/lib/big', join(root, 'bin/abs-link'));
    await symlink('dangling-target', join(root, 'bin/dangling'));
    // three names for one file, in different directories; and a pair
    await writeFile(join(root, 'a/hl'), 'hard link data');
    await link(join(root, 'a/hl'), join(root, 'B/hl2'));
    await link(join(root, 'a/hl'), join(root, 'usr/lib/x/hl3'));
    await writeFile(join(root, 'etc/pair1'), 'pair');
    await link(join(root, 'etc/pair1'), join(root, 'etc/pair2'));
    await execa('mkfifo', ['-m', '0600', join(root, 'dev/fifo')]);
    server = createServer();
    await new Promise<void>((res) => server!.listen(join(root, 'dev/sock'), res));
    if (isRoot) {
      await execa('mknod', ['-m', '0666', join(root, 'dev/null'), 'c', '1', '3']);
      await execa('mknod', ['-m', '0660', join(root, 'dev/vda1'), 'b', '254', '1']);
      await chown(join(root, 'etc/f3'), 1234, 5678);
      await chown(join(root, 'usr/lib'), 42, 43);
    }
    // a hard link whose other name lies outside the rootfs
    await mkdir(outside);
    await writeFile(join(outside, 'shared'), 'shared with the outside');
    await link(join(outside, 'shared'), join(root, 'etc/shared'));
    // fixed times on everything (symlinks included)
    for (const rel of dfsOrder(root).reverse()) await lutimes(join(root, rel), T0, T0);
    await utimes(join(root, 'etc/f1'), T0 + 100, T0 + 100);
  });

  afterAll(async () => {
    await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
    await rm(join(root, '..'), { recursive: true, force: true });
  });

  it('produces the same bytes as `cpio -o -H newc --reproducible` (regular, dirs, symlinks, hard links, fifo, socket, devices)', async () => {
    const { bytes, stats } = await archive(root);
    const gnu = await gnuCpio(root);
    // Links whose other names are outside the tree: GNU cpio keeps st_nlink (2), we count the
    // names inside the archive (1). That is the only legitimate difference; patch it and compare.
    const fixed = Buffer.from(gnu);
    const gnuEntries = await readNewcBuffer(gnu);
    const shared = gnuEntries.find((e) => e.name === 'etc/shared')!;
    expect(shared.header.nlink).toBe(2);
    fixed.write('00000001', shared.offset + 6 + 4 * 8, 'latin1');
    await expectSameArchive(bytes, fixed);
    expect(stats.bytes).toBe(bytes.length);
    expect(bytes.length % 512).toBe(0);
  });

  it('lists back with `cpio -it` in our order: "." first, parents before children, names bytewise sorted', async () => {
    const { bytes } = await archive(root);
    const r = await execa('cpio', ['-i', '-t', '--quiet'], { input: bytes });
    const names = String(r.stdout).split('\n');
    const expected = dfsOrder(root);
    // hard links are written together at the last one's place
    expect([...names].sort()).toEqual([...expected].sort());
    expect(names[0]).toBe('.');
    expect(names.indexOf('B')).toBeLessThan(names.indexOf('a'));
    expect(names.indexOf('a')).toBeLessThan(names.indexOf('a-b'));
    for (const [i, n] of names.entries()) {
      const parent = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '.';
      if (n !== '.') expect(names.indexOf(parent)).toBeLessThan(i);
    }
  });

  it('stores hard links once: shared ino, nlink = names in the archive, data with the last name', async () => {
    const entries = await readNewcBuffer((await archive(root)).bytes);
    const m = byName(entries);
    // met as B/hl2, a/hl, usr/lib/x/hl3; written like GNU cpio: held-back names newest first
    const trio = ['a/hl', 'B/hl2', 'usr/lib/x/hl3'].map((n) => m.get(n)!);
    expect(new Set(trio.map((e) => e.header.ino)).size).toBe(1);
    expect(trio.map((e) => e.header.nlink)).toEqual([3, 3, 3]);
    // written together, where the last one is met
    const idx = trio.map((e) => entries.indexOf(e));
    expect(idx).toEqual([idx[0], idx[0]! + 1, idx[0]! + 2]);
    expect(entries[idx[0]! - 1]!.name).toBe('usr/lib/x'); // where the last name, usr/lib/x/hl3, is met
    expect(entries[idx[2]! + 1]!.name).toBe('usr/lib/x/huge');
    expect(trio.map((e) => e.header.filesize)).toEqual([0, 0, 14]);
    expect(trio[2]!.data!.toString()).toBe('hard link data');
    const shared = m.get('etc/shared')!;
    expect(shared.header).toMatchObject({ nlink: 1, filesize: 23 });
    expect(shared.data!.toString()).toBe('shared with the outside');
  });

  it('numbers inodes from 0 in walk order and counts subdirectories in a directory nlink', async () => {
    const entries = await readNewcBuffer((await archive(root)).bytes);
    const m = byName(entries);
    expect(m.get('.')!.header.ino).toBe(0);
    const inos = entries.map((e) => e.header.ino);
    expect(new Set(inos).size).toBe(inos.length - 2 - 1); // trio shares one ino, the pair another
    expect(m.get('.')!.header.nlink).toBe(2 + 8); // B a a-b bin dev empty etc usr
    expect(m.get('usr/lib')!.header.nlink).toBe(3);
    expect(m.get('empty')!.header.nlink).toBe(2);
    for (const e of entries) expect([e.header.devmajor, e.header.devminor]).toEqual([0, 0]);
  });

  it('stores symlink targets as data, FIFOs and sockets as bare headers, modes with setuid bits', async () => {
    const m = byName(await readNewcBuffer((await archive(root)).bytes));
    expect(m.get('bin/init-rel')!.data!.toString()).toBe('../init');
    expect(m.get('bin/abs-link')!.data!.toString()).toBe('/usr/lib/big');
    expect(m.get('bin/dangling')!.header.mode).toBe(0o120777);
    expect(m.get('dev/fifo')!.header).toMatchObject({ mode: 0o10600, filesize: 0 });
    expect(m.get('dev/sock')!.kind).toBe('socket');
    expect(m.get('bin/suid')!.header.mode).toBe(0o104755);
    expect(m.get('usr/lib/x/huge')!.data!.equals(Buffer.alloc(3 * CHUNK + 3, 0x5a))).toBe(true);
  });

  it.skipIf(!isRoot)('stores device numbers and keeps owners from the rootfs', async () => {
    const m = byName(await readNewcBuffer((await archive(root)).bytes));
    expect(m.get('dev/null')!.header).toMatchObject({ mode: 0o20666, rdevmajor: 1, rdevminor: 3, filesize: 0 });
    expect(m.get('dev/vda1')!.header).toMatchObject({ mode: 0o60660, rdevmajor: 254, rdevminor: 1 });
    expect(makeDev(254, 1)).toBe(254 * 256 + 1);
    expect(m.get('etc/f3')!.header).toMatchObject({ uid: 1234, gid: 5678 });
    expect(m.get('usr/lib')!.header).toMatchObject({ uid: 42, gid: 43 });
  });

  it.skipIf(!isRoot)('--root-owned stores 0:0 everywhere, like cpio -R 0:0', async () => {
    const { bytes } = await archive(root, { rootOwned: true });
    for (const e of await readNewcBuffer(bytes)) expect([e.name, e.header.uid, e.header.gid]).toEqual([e.name, 0, 0]);
    const gnu = await gnuCpio(root, ['-R', '0:0']);
    const fixed = Buffer.from(gnu);
    const shared = (await readNewcBuffer(gnu)).find((e) => e.name === 'etc/shared')!;
    fixed.write('00000001', shared.offset + 6 + 4 * 8, 'latin1');
    await expectSameArchive(bytes, fixed);
  });

  it('clamps mtimes to SOURCE_DATE_EPOCH and keeps older ones', async () => {
    const m = byName(await readNewcBuffer((await archive(root, { mtimeClamp: T0 + 50 })).bytes));
    expect(m.get('etc/f1')!.header.mtime).toBe(T0 + 50);
    expect(m.get('etc/f2')!.header.mtime).toBe(T0);
    const none = byName(await readNewcBuffer((await archive(root)).bytes));
    expect(none.get('etc/f1')!.header.mtime).toBe(T0 + 100);
  });

  it('is deterministic: the same tree gives the same bytes', async () => {
    const a = await archive(root, { mtimeClamp: T0 });
    const b = await archive(root, { mtimeClamp: T0 });
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(a.stats.crc32).toBe(b.stats.crc32);
  });
});

describe('newc writer edge cases', () => {
  it('keeps names that are not valid UTF-8 byte for byte', async () => {
    const root = await makeTempDir('osb-cpio-raw-');
    const raw = Buffer.from([0x66, 0xff, 0x80]);
    writeFileSync(Buffer.concat([Buffer.from(`${root}/`), raw]), 'x');
    const entries = await readNewcBuffer((await archive(root)).bytes);
    expect(entries.map((e) => e.nameBytes)).toEqual([Buffer.from('.'), raw]);
    await rm(root, { recursive: true });
  });

  it('fails with INPUT_INVALID when a file shrinks, grows or vanishes while it is archived', async () => {
    const root = await makeTempDir('osb-cpio-race-');
    await writeFile(join(root, 'f'), 'abcdef');
    const planned = [...planEntries(root)];
    await truncate(join(root, 'f'), 2);
    const drain = async () => {
      for await (const _ of archiveChunks(planned, { entries: 0, bytes: 0, crc32: 0 })) void _;
    };
    await expect(drain()).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/changed while it was archived/) });
    await appendFile(join(root, 'f'), 'xxxxxxxx');
    await expect(drain()).rejects.toBeInstanceOf(OsbuilderError);
    await rm(join(root, 'f'));
    await expect(drain()).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/cannot read .*\/f in the rootfs/) });
    await rm(root, { recursive: true });
  });
});
