/**
 * GUID partition table (UEFI spec 2.x, chapter 5.3) for 512-byte sectors.
 *
 * LBA 0: protective MBR. LBA 1: primary header. LBA 2..33: 128 entries of 128
 * bytes. Last 33 LBAs: the backup entry array then the backup header (last LBA).
 * Header (92 bytes): "EFI PART", revision 1.0, header size, CRC32 of the
 * header (computed with the field zeroed), my LBA, alternate LBA, first and
 * last usable LBA, disk GUID, entry-array LBA, entry count, entry size, CRC32
 * of the entry array. Entry: type GUID, unique GUID, first LBA, last LBA
 * (inclusive), attributes, name (36 UTF-16LE code units).
 */
import { crc32 } from 'node:zlib';
import { internalError } from '../core/errors.js';
import { guidToBytes } from './ids.js';
import { SECTOR, buildProtectiveMbr } from './mbr.js';

/** "Linux filesystem data" partition type. */
export const GPT_TYPE_LINUX_FS = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
export const GPT_ENTRIES = 128;
export const GPT_ENTRY_SIZE = 128;
export const GPT_HEADER_SIZE = 92;
/** Sectors taken by the entry array: 128 * 128 / 512. */
export const GPT_ARRAY_SECTORS = (GPT_ENTRIES * GPT_ENTRY_SIZE) / SECTOR;

export interface GptPartition {
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  name: string;
  attributes?: bigint;
}

export interface GptSpec {
  totalSectors: number;
  diskGuid: string;
  partitions: GptPartition[];
}

export interface GptBytes {
  /** Protective MBR + primary header + entry array, written at byte 0. */
  primary: Buffer;
  /** Backup entry array + backup header, written at `backupOffset` (it ends the disk). */
  backup: Buffer;
  backupOffset: number;
}

export function buildEntryArray(partitions: GptPartition[]): Buffer {
  if (partitions.length > GPT_ENTRIES) throw internalError(`a GPT holds at most ${GPT_ENTRIES} entries`);
  const a = Buffer.alloc(GPT_ENTRIES * GPT_ENTRY_SIZE);
  partitions.forEach((p, i) => {
    const o = i * GPT_ENTRY_SIZE;
    guidToBytes(p.typeGuid).copy(a, o);
    guidToBytes(p.uniqueGuid).copy(a, o + 16);
    a.writeBigUInt64LE(BigInt(p.firstLba), o + 32);
    a.writeBigUInt64LE(BigInt(p.lastLba), o + 40);
    a.writeBigUInt64LE(p.attributes ?? 0n, o + 48);
    if (p.name.length > 36) throw internalError(`GPT partition name "${p.name}" is longer than 36 characters`);
    Buffer.from(p.name, 'utf16le').copy(a, o + 56);
  });
  return a;
}

function header(spec: GptSpec, my: number, alternate: number, entriesLba: number, arrayCrc: number): Buffer {
  const last = spec.totalSectors - 1;
  const h = Buffer.alloc(SECTOR);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(GPT_HEADER_SIZE, 12);
  // 16: header CRC32, filled below; 20: reserved
  h.writeBigUInt64LE(BigInt(my), 24);
  h.writeBigUInt64LE(BigInt(alternate), 32);
  h.writeBigUInt64LE(BigInt(2 + GPT_ARRAY_SECTORS), 40);
  h.writeBigUInt64LE(BigInt(last - GPT_ARRAY_SECTORS - 1), 48);
  guidToBytes(spec.diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(entriesLba), 72);
  h.writeUInt32LE(GPT_ENTRIES, 80);
  h.writeUInt32LE(GPT_ENTRY_SIZE, 84);
  h.writeUInt32LE(arrayCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, GPT_HEADER_SIZE)), 16);
  return h;
}

export function buildGpt(spec: GptSpec): GptBytes {
  const last = spec.totalSectors - 1;
  const firstUsable = 2 + GPT_ARRAY_SECTORS;
  const lastUsable = last - GPT_ARRAY_SECTORS - 1;
  for (const p of spec.partitions) {
    if (p.firstLba < firstUsable || p.lastLba > lastUsable || p.lastLba < p.firstLba) {
      throw internalError(`GPT partition ${p.name} (${p.firstLba}..${p.lastLba}) is outside the usable sectors ${firstUsable}..${lastUsable}`);
    }
  }
  const array = buildEntryArray(spec.partitions);
  const arrayCrc = crc32(array);
  const primary = Buffer.concat([buildProtectiveMbr(spec.totalSectors), header(spec, 1, last, 2, arrayCrc), array]);
  const backupArrayLba = last - GPT_ARRAY_SECTORS;
  const backup = Buffer.concat([array, header(spec, last, 1, backupArrayLba, arrayCrc)]);
  return { primary, backup, backupOffset: backupArrayLba * SECTOR };
}
