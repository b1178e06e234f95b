/**
 * MBR (DOS) partition tables as 512-byte sectors.
 *
 * Layout: bytes 0..439 boot code (zero), 440..443 disk signature (LE),
 * 444..445 zero, 446..509 four 16-byte entries, 510..511 0x55 0xAA.
 * Entry: status (0x80 = bootable), CHS of first sector (3 bytes), type,
 * CHS of last sector (3), first LBA (u32 LE), number of sectors (u32 LE).
 */
import { internalError, OsbuilderError } from '../core/errors.js';

export const SECTOR = 512;
export const MBR_TYPE_LINUX = 0x83;
export const MBR_TYPE_GPT_PROTECTIVE = 0xee;

export interface MbrEntry {
  startLba: number;
  sectors: number;
  type: number;
  bootable?: boolean;
}

/**
 * CHS address with the 255-head, 63-sector geometry fdisk and parted use;
 * past cylinder 1023 the conventional maximum (1023, 254, 63) is stored.
 */
export function chsBytes(lba: number): [number, number, number] {
  const heads = 255;
  const spt = 63;
  let c = Math.floor(lba / (heads * spt));
  let h = Math.floor(lba / spt) % heads;
  let s = (lba % spt) + 1;
  if (c > 1023) {
    c = 1023;
    h = 254;
    s = 63;
  }
  return [h, (s & 0x3f) | ((c >> 2) & 0xc0), c & 0xff];
}

function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw internalError(`${what} ${n} does not fit an MBR entry (32-bit sectors)`);
  return n;
}

export function buildMbr(entries: MbrEntry[], diskSignature: number): Buffer {
  if (entries.length > 4) throw internalError('an MBR holds at most 4 primary partitions');
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(u32(diskSignature, 'disk signature'), 440);
  entries.forEach((e, i) => {
    const o = 446 + 16 * i;
    const last = e.startLba + e.sectors - 1;
    b[o] = e.bootable ? 0x80 : 0x00;
    Buffer.from(chsBytes(e.startLba)).copy(b, o + 1);
    b[o + 4] = e.type;
    Buffer.from(chsBytes(last)).copy(b, o + 5);
    b.writeUInt32LE(u32(e.startLba, 'start sector'), o + 8);
    b.writeUInt32LE(u32(e.sectors, 'sector count'), o + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** The protective MBR in front of a GPT: one 0xEE entry from LBA 1 over the whole disk (capped at 2^32-1). */
export function buildProtectiveMbr(totalSectors: number): Buffer {
  const b = buildMbr([{ startLba: 1, sectors: Math.min(totalSectors - 1, 0xffffffff), type: MBR_TYPE_GPT_PROTECTIVE }], 0);
  // UEFI: starting CHS 0x000200, ending CHS 0xFFFFFF.
  Buffer.from([0x00, 0x02, 0x00]).copy(b, 446 + 1);
  Buffer.from([0xff, 0xff, 0xff]).copy(b, 446 + 5);
  return b;
}

export interface ParsedMbr {
  diskSignature: number;
  entries: Array<MbrEntry & { index: number }>;
}

/** Reads the non-empty entries of an MBR sector; throws without the 0x55AA mark. */
export function parseMbr(sector: Buffer): ParsedMbr {
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      'no MBR boot signature (0x55AA at byte 510)',
      'the image has no partition table: it is a bare filesystem or damaged; rebuild it with osbuilder image',
    );
  }
  const entries: ParsedMbr['entries'] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + 16 * i;
    const type = sector[o + 4]!;
    if (type === 0) continue;
    entries.push({ index: i + 1, bootable: sector[o] === 0x80, type, startLba: sector.readUInt32LE(o + 8), sectors: sector.readUInt32LE(o + 12) });
  }
  return { diskSignature: sector.readUInt32LE(440), entries };
}
