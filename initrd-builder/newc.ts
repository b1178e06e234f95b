/**
 * The cpio "newc" (SVR4, no CRC) format, as GNU cpio `-H newc` writes it and as
 * the kernel's initramfs unpacker (init/initramfs.c) reads it:
 *
 *   header  110 ASCII bytes: magic "070701", then 13 fields of 8 upper-case hex
 *           digits: ino mode uid gid nlink mtime filesize devmajor devminor
 *           rdevmajor rdevminor namesize check
 *   name    namesize bytes, NUL included; header+name padded with NULs to 4
 *   data    filesize bytes (file contents, or a symlink's target without NUL),
 *           padded with NULs to 4
 *   end     an entry named "TRAILER!!!" (nlink 1, everything else 0); GNU cpio
 *           then pads the archive with NULs to its 512-byte block size, which
 *           the kernel skips.
 *
 * Pure functions only: encoding and decoding of one header.
 */
import { internalError, OsbuilderError } from '../core/errors.js';

export const NEWC_MAGIC = '070701';
export const NEWC_CRC_MAGIC = '070702';
export const HEADER_SIZE = 110;
export const TRAILER_NAME = 'TRAILER!!!';
/** GNU cpio's default output block size; the archive ends on a multiple of it. */
export const BLOCK_SIZE = 512;
/** Every numeric field is 8 hex digits. */
export const FIELD_MAX = 0xffffffff;

/** A malformed archive: INPUT_INVALID, so callers that do not catch it still print a typed error. */
export class CpioFormatError extends OsbuilderError {
  constructor(message: string) {
    super('INPUT_INVALID', message, 'the archive is damaged or not an uncompressed cpio newc (070701) archive');
  }
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** The numeric fields of a newc header, in file order. */
export interface NewcHeader {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  devmajor: number;
  devminor: number;
  rdevmajor: number;
  rdevminor: number;
  /** Always 0 for 070701 (only 070702 carries a checksum). */
  check: number;
}

const FIELDS = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor'] as const;

export function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function hex8(field: string, value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > FIELD_MAX) {
    throw internalError(`cpio newc field ${field}=${value} does not fit 8 hex digits`);
  }
  return value.toString(16).toUpperCase().padStart(8, '0');
}

/**
 * Header + name + NUL + padding to 4, as one buffer. `name` is the raw bytes
 * of the archive name (no leading "./", no NUL).
 */
export function encodeHeader(h: NewcHeader, name: Buffer): Buffer {
  const namesize = name.length + 1;
  let text = NEWC_MAGIC;
  for (const f of FIELDS) text += hex8(f, h[f]);
  text += hex8('namesize', namesize) + hex8('check', h.check);
  const total = HEADER_SIZE + namesize;
  const out = Buffer.alloc(total + pad4(total));
  out.write(text, 0, 'latin1');
  name.copy(out, HEADER_SIZE);
  return out;
}

/** The trailer entry; `offset` is the archive length so far, to pad the end to BLOCK_SIZE. */
export function encodeTrailer(offset: number): Buffer {
  const entry = encodeHeader(
    { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0, check: 0 },
    Buffer.from(TRAILER_NAME),
  );
  const end = offset + entry.length;
  const pad = (BLOCK_SIZE - (end % BLOCK_SIZE)) % BLOCK_SIZE;
  return pad === 0 ? entry : Buffer.concat([entry, Buffer.alloc(pad)]);
}

export interface DecodedHeader extends NewcHeader {
  magic: string;
  namesize: number;
}

/** Parses the 110 header bytes at `buf[offset]`; throws on a bad magic or a non-hex field. */
export function decodeHeader(buf: Buffer, offset = 0): DecodedHeader {
  const magic = buf.toString('latin1', offset, offset + 6);
  if (magic !== NEWC_MAGIC && magic !== NEWC_CRC_MAGIC) {
    throw new CpioFormatError(`bad cpio magic ${JSON.stringify(magic)} at offset ${offset} (want ${NEWC_MAGIC})`);
  }
  const nums: number[] = [];
  for (let i = 0; i < 13; i++) {
    const s = buf.toString('latin1', offset + 6 + i * 8, offset + 14 + i * 8);
    if (!/^[0-9A-Fa-f]{8}$/.test(s)) throw new CpioFormatError(`bad cpio header field ${JSON.stringify(s)} at offset ${offset + 6 + i * 8}`);
    nums.push(Number.parseInt(s, 16));
  }
  const [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] = nums as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check };
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export function kindOfMode(mode: number): EntryKind | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'chardev';
    case S_IFBLK:
      return 'blockdev';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      return undefined;
  }
}

/** Linux dev_t -> major/minor (glibc's gnu_dev_major/minor), exact for Node's numeric st_rdev. */
export function devMajor(rdev: number): number {
  const lo = rdev >>> 0;
  const hi = Math.floor(rdev / 0x100000000) >>> 0;
  return ((hi & 0xfffff000) | ((lo >>> 8) & 0xfff)) >>> 0;
}

export function devMinor(rdev: number): number {
  const lo = rdev >>> 0;
  const hi = Math.floor(rdev / 0x100000000) >>> 0;
  return (((hi & 0xfff) << 20) | ((lo >>> 12) & 0xfff00) | (lo & 0xff)) >>> 0;
}

/** major/minor -> Linux dev_t (glibc's gnu_dev_makedev). */
export function makeDev(major: number, minor: number): number {
  const lo = (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
  const hi = ((major & 0xfffff000) | ((minor >>> 20) & 0xfff)) >>> 0;
  return hi * 0x100000000 + lo;
}
