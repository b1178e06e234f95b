/**
 * Identifiers of an image: filesystem UUID, ext4 hash seed, GPT disk and
 * partition GUIDs, MBR disk signatures, the dm-verity salt. With
 * SOURCE_DATE_EPOCH each one is derived from a hash of the epoch and its role,
 * so two builds of the same rootfs are byte-identical; without it they are random.
 */
import { createHash, randomBytes } from 'node:crypto';
import { internalError } from '../core/errors.js';

/** `n` bytes for `role`: sha256("osbuilder-image:<epoch>:<role>"), or random. */
export function derivedBytes(epoch: number | undefined, role: string, n: number): Buffer {
  if (epoch === undefined) return randomBytes(n);
  const out = Buffer.alloc(n);
  for (let block = 0, filled = 0; filled < n; block++) {
    const h = createHash('sha256').update(`osbuilder-image:${epoch}:${role}:${block}`).digest();
    filled += h.copy(out, filled);
  }
  return out;
}

/** RFC 4122 text form of 16 bytes, big-endian (as mke2fs -U and blkid print it). */
export function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** A version-4-shaped UUID for `role` (derived or random). */
export function deriveUuid(epoch: number | undefined, role: string): string {
  const b = derivedBytes(epoch, role, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return formatUuid(b);
}

function uuidHex(uuid: string): string {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw internalError(`not a UUID: ${uuid}`);
  return hex;
}

/**
 * GUID as stored on disk by GPT (UEFI spec, "mixed endian"): the first three
 * fields little-endian, the last two as written.
 */
export function guidToBytes(guid: string): Buffer {
  const b = Buffer.from(uuidHex(guid), 'hex');
  const out = Buffer.from(b);
  out.writeUInt32LE(b.readUInt32BE(0), 0);
  out.writeUInt16LE(b.readUInt16BE(4), 4);
  out.writeUInt16LE(b.readUInt16BE(6), 6);
  return out;
}

export function guidFromBytes(b: Buffer): string {
  const out = Buffer.from(b.subarray(0, 16));
  out.writeUInt32BE(b.readUInt32LE(0), 0);
  out.writeUInt16BE(b.readUInt16LE(4), 4);
  out.writeUInt16BE(b.readUInt16LE(6), 6);
  return formatUuid(out).toUpperCase();
}

export interface ImageIds {
  fsUuid: string;
  hashSeed: string;
  diskGuid: string;
  partitionGuids: [string, string];
  /** MBR #1 (byte 0) and MBR #2 (byte 2 MiB) disk signatures; never 0. */
  mbrSignatures: [number, number];
  veritySalt: string;
}

function signature(epoch: number | undefined, role: string): number {
  const v = derivedBytes(epoch, role, 4).readUInt32LE(0);
  return v === 0 ? 1 : v;
}

export function imageIds(epoch: number | undefined): ImageIds {
  return {
    fsUuid: deriveUuid(epoch, 'fs-uuid'),
    hashSeed: deriveUuid(epoch, 'ext4-hash-seed'),
    diskGuid: deriveUuid(epoch, 'gpt-disk').toUpperCase(),
    partitionGuids: [deriveUuid(epoch, 'gpt-part-1').toUpperCase(), deriveUuid(epoch, 'gpt-part-2').toUpperCase()],
    mbrSignatures: [signature(epoch, 'mbr-1'), signature(epoch, 'mbr-2')],
    veritySalt: derivedBytes(epoch, 'verity-salt', 32).toString('hex'),
  };
}
