import { describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import {
  BLOCK_SIZE,
  HEADER_SIZE,
  decodeHeader,
  devMajor,
  devMinor,
  encodeHeader,
  encodeTrailer,
  kindOfMode,
  makeDev,
  pad4,
  type NewcHeader,
} from '../../initrd-builder/newc.js';
import { readNewcBuffer, CpioFormatError, readNewc } from '../../initrd-builder/reader.js';
import { OsbuilderError } from '../../core/errors.js';

const base: NewcHeader = {
  ino: 0x12,
  mode: 0o100755,
  uid: 1000,
  gid: 100,
  nlink: 1,
  mtime: 0x6553f100,
  filesize: 5,
  devmajor: 0,
  devminor: 0,
  rdevmajor: 0,
  rdevminor: 0,
  check: 0,
};

describe('newc header encoding', () => {
  it('writes the 110-byte ASCII header field by field, then the NUL-terminated name', () => {
    const b = encodeHeader(base, Buffer.from('init'));
    const text = b.toString('latin1', 0, HEADER_SIZE);
    expect(text).toBe(
      '070701' +
        '00000012' + // ino
        '000081ED' + // mode 0100755, upper-case hex
        '000003E8' + // uid
        '00000064' + // gid
        '00000001' + // nlink
        '6553F100' + // mtime
        '00000005' + // filesize
        '00000000' +
        '00000000' + // dev
        '00000000' +
        '00000000' + // rdev
        '00000005' + // namesize: "init" + NUL
        '00000000', // check
    );
    expect(b.subarray(HEADER_SIZE, HEADER_SIZE + 5)).toEqual(Buffer.from('init\0'));
    // 110 + 5 = 115 -> padded to 116
    expect(b.length).toBe(116);
    expect(b[115]).toBe(0);
  });

  it('pads header+name to a multiple of 4 for every name length', () => {
    for (let len = 1; len <= 8; len++) {
      const b = encodeHeader(base, Buffer.from('x'.repeat(len)));
      const raw = HEADER_SIZE + len + 1;
      expect(b.length).toBe(raw + pad4(raw));
      expect(b.length % 4).toBe(0);
      expect(b.subarray(raw).every((x) => x === 0)).toBe(true);
      expect(b[HEADER_SIZE + len]).toBe(0);
    }
    expect([0, 1, 2, 3, 4, 5].map(pad4)).toEqual([0, 3, 2, 1, 0, 3]);
  });

  it('refuses values that do not fit 8 hex digits', () => {
    expect(() => encodeHeader({ ...base, filesize: 2 ** 32 }, Buffer.from('big'))).toThrow(/filesize/);
    expect(() => encodeHeader({ ...base, uid: -1 }, Buffer.from('neg'))).toThrow(/uid/);
  });

  it('ends with TRAILER!!! (nlink 1) and pads the archive to 512-byte blocks like GNU cpio', () => {
    const t = encodeTrailer(116);
    expect((116 + t.length) % BLOCK_SIZE).toBe(0);
    const h = decodeHeader(t);
    expect(h).toMatchObject({ ino: 0, mode: 0, nlink: 1, filesize: 0, namesize: 11 });
    expect(t.toString('latin1', HEADER_SIZE, HEADER_SIZE + 11)).toBe('TRAILER!!!\0');
    expect(t.subarray(HEADER_SIZE + 11).every((x) => x === 0)).toBe(true);
    expect(encodeTrailer(512 - 124).length).toBe(124); // exactly fills the block: no extra padding
  });

  it('decodes what it encodes and rejects a bad magic', () => {
    const h = { ...base, rdevmajor: 0x103, rdevminor: 0xabcde, devmajor: 8, devminor: 1, nlink: 3 };
    expect(decodeHeader(encodeHeader(h, Buffer.from('a')))).toEqual({ ...h, magic: '070701', namesize: 2 });
    const bad = encodeHeader(base, Buffer.from('a'));
    bad.write('070707', 0, 'latin1');
    expect(() => decodeHeader(bad)).toThrow(/magic/);
    expect(() => decodeHeader(bad)).toThrow(CpioFormatError);
  });

  it('classifies modes', () => {
    expect([0o100644, 0o40755, 0o120777, 0o20666, 0o60660, 0o10644, 0o140755].map(kindOfMode)).toEqual([
      'file',
      'dir',
      'symlink',
      'chardev',
      'blockdev',
      'fifo',
      'socket',
    ]);
  });
});

describe('device numbers (glibc gnu_dev_major/minor/makedev)', () => {
  it('splits the real st_rdev of /dev/null into 1:3', () => {
    const rdev = statSync('/dev/null').rdev;
    expect([devMajor(rdev), devMinor(rdev)]).toEqual([1, 3]);
    expect(makeDev(1, 3)).toBe(rdev);
  });

  it('round-trips large majors and minors across the split encoding', () => {
    // glibc: ((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12)
    // 259 = 0x103 -> 0x10300; minor 0x12345 -> 0x45 | 0x12300 << 12 = 0x12300045
    expect(makeDev(259, 0x12345)).toBe(0x12310345);
    expect(makeDev(0x1000, 0x100000)).toBe(0x1000 * 2 ** 32 + 0x1 * 2 ** 32); // both high parts in the upper word
    for (const [maj, min] of [
      [0, 0],
      [8, 17],
      [259, 0x12345],
      [0xfff, 0xfffff],
      [0x12345, 0xabcdef],
    ] as const) {
      const d = makeDev(maj, min);
      expect([devMajor(d), devMinor(d)]).toEqual([maj, min]);
    }
  });
});

describe('newc reader', () => {
  const archive = Buffer.concat([
    encodeHeader({ ...base, mode: 0o40755, filesize: 0, nlink: 2 }, Buffer.from('.')),
    encodeHeader(base, Buffer.from('init')),
    Buffer.from('hello\0\0\0'),
    encodeHeader({ ...base, mode: 0o120777, filesize: 3 }, Buffer.from('sbin-init')),
    Buffer.from('abc\0'),
  ]);
  const full = Buffer.concat([archive, encodeTrailer(archive.length)]);

  it('reads entries, data and symlink targets back', async () => {
    const entries = await readNewcBuffer(full);
    expect(entries.map((e) => [e.name, e.kind, e.data?.toString()])).toEqual([
      ['.', 'dir', ''],
      ['init', 'file', 'hello'],
      ['sbin-init', 'symlink', 'abc'],
    ]);
    expect(entries[1]!.offset).toBe(encodeHeader(base, Buffer.from('.')).length);
  });

  it('gives the same result fed one byte at a time', async () => {
    async function* bytes() {
      for (let i = 0; i < full.length; i++) yield full.subarray(i, i + 1);
    }
    const names: string[] = [];
    for await (const e of readNewc(bytes(), { collect: () => true })) names.push(`${e.name}=${e.data?.toString()}`);
    expect(names).toEqual(['.=', 'init=hello', 'sbin-init=abc']);
  });

  it('rejects a missing trailer, truncation, a bad header and garbage after the trailer', async () => {
    await expect(readNewcBuffer(archive)).rejects.toThrow(/without a TRAILER!!!/);
    await expect(readNewcBuffer(full.subarray(0, 250))).rejects.toBeInstanceOf(CpioFormatError);
    const corrupt = Buffer.from(full);
    corrupt.write('zz', 130, 'latin1');
    await expect(readNewcBuffer(corrupt)).rejects.toThrow(/bad cpio (magic|header field)/);
    const trailing = Buffer.concat([full, Buffer.from('x')]);
    await expect(readNewcBuffer(trailing)).rejects.toThrow(/not NUL padding/);
  });

  it('refuses with a typed INPUT_INVALID error, not a bare Error (found by parsers-property)', async () => {
    await expect(readNewcBuffer(Buffer.alloc(0))).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: expect.stringMatching(/offset 0 without a TRAILER!!!/),
    });
    const shifted = Buffer.concat([Buffer.alloc(1), full]);
    const err = await readNewcBuffer(shifted).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsbuilderError);
    expect(err).toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/bad cpio magic/), hint: expect.stringMatching(/cpio newc/) });
  });
});
