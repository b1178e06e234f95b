/**
 * `osbuilder image` with the real tools, through the compiled CLI: images from
 * a busybox tree and a Debian minbase tree, read back with e2fsck, sfdisk
 * (at 0 and on the nvdimm view from 2 MiB), blkid and debugfs; byte-identical
 * rebuilds with SOURCE_DATE_EPOCH; GPT, erofs, verity and free space.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { lstat, mkdir, open, readFile, readdir, rename, stat, utimes, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, type Jsonified } from '../support/cli.js';
import { makeBusyboxRootfs, makeTempDir } from '../support/fixtures.js';
import { contentDigest, debianKataRootfs, extract, sha256Of } from '../support/image.js';
import type { ImageResult } from '../../image-builder/index.js';
import { MiB } from '../../core/vocab.js';

const EPOCH = '1700000000';
let work: string;
let busybox: string;
let debian: string;

beforeAll(async () => {
  await execa('npm', ['run', 'build']);
  work = await makeTempDir('osb-image-');
  busybox = await makeBusyboxRootfs(join(work, 'busybox'));
  debian = await debianKataRootfs();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function image(args: string[], env: Record<string, string> = {}): Promise<Jsonified<ImageResult>> {
  const r = await runCli<ImageResult>(['image', ...args, '--json'], { env: { ...process.env, SOURCE_DATE_EPOCH: '', ...env }, timeout: 10 * 60_000 });
  expect(r.exitCode, r.stderr + r.stdout).toBe(0);
  return r.json!;
}

/** The part of `sfdisk -J` the tests read. */
interface SfdiskTable {
  label: string;
  id: string;
  unit: string;
  partitions: Array<{ node: string; start: number; size: number; type: string }>;
}

async function sfdisk(file: string): Promise<SfdiskTable> {
  const r = await execa('sfdisk', ['-J', file]);
  expect(String(r.stderr)).toBe('');
  return (JSON.parse(String(r.stdout)) as { partitiontable: SfdiskTable }).partitiontable;
}

async function e2fsck(file: string, offset: number) {
  const r = await execa('e2fsck', ['-fn', `${file}?offset=${offset}`], { reject: false });
  expect(r.exitCode, String(r.stdout) + r.stderr).toBe(0);
  return String(r.stdout);
}

async function debugfs(file: string, offset: number, request: string): Promise<string> {
  const r = await execa('debugfs', ['-R', request, `${file}?offset=${offset}`], { stripFinalNewline: false });
  return String(r.stdout);
}

/**
 * rdump of the whole filesystem compared with the rootfs (without timestamps;
 * lost+found is the image's own). rdump chowns after chmod, which drops
 * setuid/setgid/sticky bits: those are checked with debugfs stat instead.
 */
async function expectSameContent(img: string, offset: number, rootfs: string, name: string) {
  const out = join(work, `rdump-${name}`);
  await mkdir(out);
  await execa('debugfs', ['-R', `rdump / ${out}`, `${img}?offset=${offset}`]);
  const skip = (rel: string) => rel === '/lost+found';
  const regular = (lines: string[]) => lines.filter((l) => /^\S+ (4|10|12)0000 /.test(l));
  const digest = (root: string) => contentDigest(root, { skip, permMask: 0o777 });
  expect(regular(await digest(out))).toEqual(regular(await digest(rootfs)));
}

describe('busybox rootfs, default layout (MBR #1, DAX block, MBR #2)', () => {
  let img: string;
  let j: Jsonified<ImageResult>;

  beforeAll(async () => {
    img = join(work, 'busybox.img');
    j = await image([busybox, '-o', img], { SOURCE_DATE_EPOCH: EPOCH });
  });

  it('is 128 MiB with the root partition at 3 MiB, as the result says', async () => {
    expect((await stat(img)).size).toBe(128 * MiB);
    expect(j).toMatchObject({ path: img, sizeBytes: 128 * MiB, fsType: 'ext4', dax: true, partitionTable: 'mbr', reproducible: true });
    expect(j.partitions).toEqual([{ number: 1, role: 'root', start: 3 * MiB, size: 124 * MiB, type: '83' }]);
  });

  it('sfdisk reads the partition at 3 MiB from byte 0 and at 1 MiB on the view from 2 MiB; blkid finds the ext4 UUID', async () => {
    const t0 = await sfdisk(img);
    expect(t0).toMatchObject({ label: 'dos', id: j.diskIds[0], unit: 'sectors' });
    expect(t0.partitions.map((p) => [p.start, p.size, p.type])).toEqual([[6144, (124 * MiB) / 512, '83']]);
    const view = await extract(img, 2 * MiB, 126 * MiB, join(work, 'busybox.view'));
    const t2 = await sfdisk(view);
    expect(t2).toMatchObject({ label: 'dos', id: j.diskIds[1] });
    expect(t2.partitions.map((p) => [p.start, p.size, p.type])).toEqual([[2048, (124 * MiB) / 512, '83']]);
    const blkid = await execa('blkid', ['-p', '-O', String(3 * MiB), '-o', 'export', img]);
    expect(String(blkid.stdout)).toMatch(new RegExp(`^UUID=${j.uuid}$`, 'm'));
    expect(String(blkid.stdout)).toMatch(/^TYPE=ext4$/m);
  });

  it('e2fsck is clean; 4 KiB blocks, 3 % reserved; debugfs sees the same tree as the rootfs', async () => {
    await e2fsck(img, 3 * MiB);
    const head = String((await execa('dumpe2fs', ['-h', `${img}?offset=${3 * MiB}`])).stdout);
    const field = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+)`, 'm').exec(head)?.[1]);
    expect(field('Block size')).toBe(4096);
    expect(field('Reserved block count')).toBe(Math.floor((field('Block count') * 3) / 100));
    expect(head).toMatch(/^Filesystem UUID:\s+(\S+)$/m);
    expect(/^Filesystem UUID:\s+(\S+)$/m.exec(head)![1]).toBe(j.uuid);
    expect(await debugfs(img, 3 * MiB, 'cat /etc/os-release')).toBe(await readFile(join(busybox, 'etc/os-release'), 'utf8'));
    await expectSameContent(img, 3 * MiB, busybox, 'busybox');
  });

  it('with SOURCE_DATE_EPOCH, mtimes are clamped to it and atime = ctime = mtime', async () => {
    const s = await debugfs(img, 3 * MiB, 'stat /etc/os-release');
    const t = (n: string) => new RegExp(`^\\s*${n}: (0x[0-9a-f]+):`, 'm').exec(s)?.[1];
    expect(Number(t('mtime'))).toBe(Number(EPOCH)); // the file was written just now, after the epoch
    expect(t('atime')).toBe(t('mtime'));
    expect(t('ctime')).toBe(t('mtime'));
    expect(Number(t('crtime'))).toBe(Number(EPOCH));
    const old = join(work, 'busybox-old');
    await makeBusyboxRootfs(old);
    await utimes(join(old, 'etc/os-release'), 1000000000, 1000000000);
    const oldImg = join(work, 'busybox-old.img');
    await image([old, '-o', oldImg], { SOURCE_DATE_EPOCH: EPOCH });
    expect(await debugfs(oldImg, 3 * MiB, 'stat /etc/os-release')).toMatch(/^\s*mtime: 0x3b9aca00:00000000/m);
    await e2fsck(oldImg, 3 * MiB);
  });

  it('rebuilds are byte-identical with SOURCE_DATE_EPOCH, even from a fresh copy of the rootfs', async () => {
    const again = join(work, 'busybox-again.img');
    await image([busybox, '-o', again], { SOURCE_DATE_EPOCH: EPOCH });
    expect(await sha256Of(again)).toBe(await sha256Of(img));
    const copy = join(work, 'busybox-copy');
    await execa('cp', ['-r', busybox, copy]); // new inodes, atimes, ctimes and mtimes
    const fromCopy = join(work, 'busybox-copy.img');
    await image([copy, '-o', fromCopy], { SOURCE_DATE_EPOCH: EPOCH });
    expect(await sha256Of(fromCopy)).toBe(await sha256Of(img));
  });

  it('without SOURCE_DATE_EPOCH the ids are random', async () => {
    const a = await image([busybox, '-o', join(work, 'r1.img')]);
    const b = await image([busybox, '-o', join(work, 'r2.img')]);
    expect(a.reproducible).toBe(false);
    expect(a.uuid).not.toBe(b.uuid);
    expect(a.diskIds).not.toEqual(b.diskIds);
  });
});

describe('Debian minbase rootfs', () => {
  let img: string;
  let j: Jsonified<ImageResult>;

  beforeAll(async () => {
    img = join(work, 'debian.img');
    j = await image([debian, '-o', img, '--sha256'], { SOURCE_DATE_EPOCH: EPOCH });
  });

  it('is sized automatically to a multiple of 128 MiB; e2fsck clean; sfdisk at 0 and 2 MiB', async () => {
    expect(j.sizeBytes % (128 * MiB)).toBe(0);
    expect(j.sizeBytes).toBe((await stat(img)).size);
    expect(j.sha256).toBe(await sha256Of(img));
    await e2fsck(img, 3 * MiB);
    const size = j.partitions[0]!.size / 512;
    expect((await sfdisk(img)).partitions.map((p) => [p.start, p.size])).toEqual([[6144, size]]);
    const view = await extract(img, 2 * MiB, 2 * MiB, join(work, 'debian.view'));
    const fh = await open(view, 'r+'); // the nvdimm view: same size as the namespace data, table only
    await fh.truncate(j.sizeBytes - 2 * MiB);
    await fh.close();
    expect((await sfdisk(view)).partitions.map((p) => [p.start, p.size])).toEqual([[2048, size]]);
  });

  it('debugfs ls /usr/bin lists what the rootfs has, and a file reads back identical; rdump matches the whole tree', async () => {
    const listed = (await debugfs(img, 3 * MiB, 'ls -p /usr/bin'))
      .split('\n')
      .map((l) => l.split('/')[5])
      .filter((n): n is string => n !== undefined && n !== '.' && n !== '..' && n !== '')
      .sort();
    expect(listed).toEqual((await readdir(join(debian, 'usr/bin'))).sort());
    expect(listed.length).toBeGreaterThan(100);
    expect(await debugfs(img, 3 * MiB, 'cat /etc/debian_version')).toBe(await readFile(join(debian, 'etc/debian_version'), 'utf8'));
    const agent = await debugfs(img, 3 * MiB, 'stat /usr/bin/kata-agent');
    expect(agent).toMatch(/Type: regular\s+Mode:\s+0755/);
    await expectSameContent(img, 3 * MiB, debian, 'debian');
    // what rdump does not recreate: special mode bits, device nodes
    expect(await debugfs(img, 3 * MiB, 'stat /usr/bin/chfn')).toMatch(/Type: regular\s+Mode:\s+04755/);
    expect(await debugfs(img, 3 * MiB, 'stat /usr/bin/chage')).toMatch(/Mode:\s+02755[\s\S]*Group:\s+42 /);
    expect(await debugfs(img, 3 * MiB, 'stat /tmp')).toMatch(/Type: directory\s+Mode:\s+01777/);
    const devices = (await readdir(join(debian, 'dev'))).sort();
    expect(devices).toContain('null');
    for (const d of devices) {
      const st = await lstat(join(debian, 'dev', d));
      if (!st.isCharacterDevice()) continue;
      const s = await debugfs(img, 3 * MiB, `stat /dev/${d}`);
      expect(s).toMatch(/Type: character special/);
      expect(s).toMatch(new RegExp(`Device major/minor number: 0*${Math.floor(st.rdev / 256)}:0*${st.rdev % 256} `));
    }
  });

  it('two builds are byte-identical with SOURCE_DATE_EPOCH', async () => {
    const again = join(work, 'debian-again.img');
    const k = await image([debian, '-o', again, '--sha256'], { SOURCE_DATE_EPOCH: EPOCH });
    expect(k.sha256).toBe(j.sha256);
  });

  it('--size: a size that fits is used as given (even below the 128 MiB alignment)', async () => {
    const fixed = await image([debian, '-o', join(work, 'debian-fixed.img'), '--size', '300']);
    expect(fixed.sizeBytes).toBe(300 * MiB);
    expect((await stat(fixed.path)).size).toBe(300 * MiB);
    await e2fsck(fixed.path, 3 * MiB);
  });
});

describe('other layouts and filesystems', () => {
  it('--no-dax --partition-table gpt: a valid GPT, the partition from 1 MiB to 1 MiB before the end, type Linux filesystem', async () => {
    const img = join(work, 'gpt.img');
    const j = await image([busybox, '-o', img, '--no-dax', '--partition-table', 'gpt'], { SOURCE_DATE_EPOCH: EPOCH });
    const v = await execa('sfdisk', ['--verify', img], { reject: false });
    expect(v.exitCode, String(v.stdout) + v.stderr).toBe(0);
    const t = await sfdisk(img);
    expect(t).toMatchObject({ label: 'gpt', id: j.diskIds[0], firstlba: 34, lastlba: (128 * MiB) / 512 - 34 });
    expect(t.partitions).toHaveLength(1);
    expect(t.partitions[0]).toMatchObject({
      start: 2048,
      size: (126 * MiB) / 512,
      type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      uuid: j.partitions[0]!.uuid,
      name: 'rootfs',
    });
    await e2fsck(img, MiB);
  });

  it('--no-dax (MBR): one table, partition at 1 MiB, no DAX block', async () => {
    const img = join(work, 'plain.img');
    await image([busybox, '-o', img, '--no-dax']);
    expect((await sfdisk(img)).partitions.map((p) => [p.start, p.size])).toEqual([[2048, (126 * MiB) / 512]]);
    const fh = await open(img, 'r');
    const b = Buffer.alloc(16);
    await fh.read(b, 0, 16, 4096);
    await fh.close();
    expect(b.every((x) => x === 0)).toBe(true);
    await e2fsck(img, MiB);
  });

  it('--fs-type erofs: fsck.erofs clean on the partition, extraction matches the rootfs, rebuilds identical', async () => {
    const img = join(work, 'erofs.img');
    const j = await image([busybox, '-o', img, '--fs-type', 'erofs'], { SOURCE_DATE_EPOCH: EPOCH });
    expect(j.fsType).toBe('erofs');
    const part = await extract(img, j.partitions[0]!.start, j.partitions[0]!.size, join(work, 'erofs.part'));
    const out = join(work, 'erofs-extract');
    await execa('fsck.erofs', [`--extract=${out}`, part]);
    const regular = (lines: string[]) => lines.filter((l) => /^\S+ (4|10|12)0000 /.test(l));
    expect(regular(await contentDigest(out))).toEqual(regular(await contentDigest(busybox)));
    expect(String((await execa('dump.erofs', ['-s', part])).stdout)).toMatch(new RegExp(`Filesystem UUID:\\s+${j.uuid}`));
    expect(String((await execa('blkid', ['-p', '-O', String(j.partitions[0]!.start), '-o', 'export', img])).stdout)).toMatch(/^TYPE=erofs$/m);
    const again = await image([busybox, '-o', join(work, 'erofs-again.img'), '--fs-type', 'erofs', '--sha256'], { SOURCE_DATE_EPOCH: EPOCH });
    expect(again.sha256).toBe(await sha256Of(img));
  });

  it('--verity: hash partition after the root (no superblock, as Kata), root_hash.txt and root_hash_<variant>.txt beside the image; veritysetup verifies the tree with only kernel_verity_params and catches a flipped byte', async () => {
    const dir = join(work, 'verity');
    await mkdir(dir);
    const img = join(dir, 'kata.img');
    const j = await image([busybox, '-o', img, '--verity', '--build-variant', 'measured'], { SOURCE_DATE_EPOCH: EPOCH });
    const root = j.partitions[0]!;
    const hash = j.partitions[1]!;
    expect(root).toMatchObject({ number: 1, role: 'root', start: 3 * MiB });
    expect(hash).toMatchObject({ number: 2, role: 'verity', start: root.start + root.size });
    expect(hash.start + hash.size).toBe(j.sizeBytes - MiB);
    expect((await sfdisk(img)).partitions.map((p) => [p.start, p.size])).toEqual([
      [root.start / 512, root.size / 512],
      [hash.start / 512, hash.size / 512],
    ]);
    const txt = await readFile(join(dir, 'root_hash.txt'), 'utf8');
    expect(txt).toMatch(new RegExp(`^Root hash:\\s+${j.rootHash}$`, 'm'));
    expect(txt).toMatch(new RegExp(`^Salt:\\s+${j.verity!.salt}$`, 'm'));
    expect(txt).toContain(img);
    // kernel_verity_params, Kata's form, is all a verifier needs
    const params = (await readFile(join(dir, 'root_hash_measured.txt'), 'utf8')).trim();
    expect(params).toBe(j.verity!.kernelVerityParams);
    const kv = Object.fromEntries(params.split(',').map((f) => f.split('=') as [string, string]));
    expect(Object.keys(kv)).toEqual(['root_hash', 'salt', 'data_blocks', 'data_block_size', 'hash_block_size']);
    expect(Number(kv.data_blocks) * Number(kv.data_block_size)).toBe(root.size);
    const verify = (data: string, tree: string) =>
      execa(
        'veritysetup',
        [
          'verify',
          '--no-superblock',
          `--data-blocks=${kv.data_blocks}`,
          `--data-block-size=${kv.data_block_size}`,
          `--hash-block-size=${kv.hash_block_size}`,
          `--salt=${kv.salt}`,
          data,
          tree,
          kv.root_hash!,
        ],
        { reject: false },
      );
    const data = await extract(img, root.start, root.size, join(work, 'verity.data'));
    const tree = await extract(img, hash.start, hash.size, join(work, 'verity.hash'));
    const ok = await verify(data, tree);
    expect(ok.exitCode, String(ok.stderr)).toBe(0);
    await e2fsck(img, root.start);
    // flip one byte inside the filesystem's first block group: verification must fail
    const fh = await open(data, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 1024 + 0x30);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 1024 + 0x30);
    await fh.close();
    const bad = await verify(data, tree);
    expect(bad.exitCode).not.toBe(0);
    // byte-identical rebuild, both files included (same path)
    await rename(img, `${img}.first`);
    await rename(join(dir, 'root_hash.txt'), join(dir, 'root_hash.txt.first'));
    await image([busybox, '-o', img, '--verity', '--build-variant', 'measured'], { SOURCE_DATE_EPOCH: EPOCH });
    expect(await sha256Of(img)).toBe(await sha256Of(`${img}.first`));
    expect(await readFile(join(dir, 'root_hash.txt'), 'utf8')).toBe(txt);
    expect((await readFile(join(dir, 'root_hash_measured.txt'), 'utf8')).trim()).toBe(params);
  });

  it('--root-free-space leaves at least that much free for unprivileged users', async () => {
    const img = join(work, 'free.img');
    const j = await image([busybox, '-o', img, '-r', '300']);
    expect(j.sizeBytes).toBe(384 * MiB);
    const head = String((await execa('dumpe2fs', ['-h', `${img}?offset=${3 * MiB}`])).stdout);
    const field = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+)`, 'm').exec(head)?.[1]);
    expect((field('Free blocks') - field('Reserved block count')) * 4096).toBeGreaterThanOrEqual(300 * MiB);
  });
});
