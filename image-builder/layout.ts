/**
 * Partition tables and the DAX header as byte writes into the image file.
 * Pure: the executor writes them after the filesystem is in place.
 */
import { internalError } from '../core/errors.js';
import { buildPfnSb, PFN_SB_OFFSET } from './dax.js';
import { buildGpt, GPT_TYPE_LINUX_FS } from './gpt.js';
import type { ImageIds } from './ids.js';
import { buildMbr, MBR_TYPE_LINUX, SECTOR, type MbrEntry } from './mbr.js';
import { DAX_ALIGN, DAX_HEADER, type SizePlan } from './size.js';

export type PartitionTable = 'mbr' | 'gpt';

export interface ByteWrite {
  offset: number;
  bytes: Buffer;
  what: string;
}

export interface PlannedPartition {
  number: number;
  role: 'root' | 'verity';
  /** Bytes from the start of the image file. */
  start: number;
  size: number;
  /** MBR type byte as sfdisk prints it ("83") or the GPT type GUID. */
  type: string;
  /** GPT partition GUID. */
  uuid?: string;
}

export interface TablePlan {
  writes: ByteWrite[];
  partitions: PlannedPartition[];
  /** Partition tables a reader finds, by the byte offset of the view they describe (0, and 2 MiB with DAX). */
  views: Array<{ offset: number; label: 'dos' | 'gpt'; id: string }>;
}

function regions(size: SizePlan): Array<{ role: 'root' | 'verity'; start: number; size: number }> {
  return [{ role: 'root', ...size.root }, ...(size.hash ? [{ role: 'verity' as const, ...size.hash }] : [])];
}

function mbrEntries(size: SizePlan, base: number, verity: boolean): MbrEntry[] {
  // Kata's image_builder.sh sets the boot flag on the root partition when it adds the hash partition.
  return regions(size).map((r, i) => ({ startLba: (r.start - base) / SECTOR, sectors: r.size / SECTOR, type: MBR_TYPE_LINUX, bootable: verity && i === 0 }));
}

const hex32 = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

export function planTables(size: SizePlan, opts: { dax: boolean; table: PartitionTable; ids: ImageIds }): TablePlan {
  const verity = size.hash !== undefined;
  const parts = regions(size);
  if (opts.table === 'gpt') {
    if (opts.dax) throw internalError('GPT with the DAX header is refused earlier (see options.ts)');
    const gpt = buildGpt({
      totalSectors: size.totalBytes / SECTOR,
      diskGuid: opts.ids.diskGuid,
      partitions: parts.map((r, i) => ({
        typeGuid: GPT_TYPE_LINUX_FS,
        uniqueGuid: opts.ids.partitionGuids[i]!,
        firstLba: r.start / SECTOR,
        lastLba: (r.start + r.size) / SECTOR - 1,
        name: r.role === 'root' ? 'rootfs' : 'verity',
      })),
    });
    return {
      writes: [
        { offset: 0, bytes: gpt.primary, what: 'protective MBR, primary GPT header and entries' },
        { offset: gpt.backupOffset, bytes: gpt.backup, what: 'backup GPT entries and header' },
      ],
      partitions: parts.map((r, i) => ({ number: i + 1, ...r, type: GPT_TYPE_LINUX_FS, uuid: opts.ids.partitionGuids[i]! })),
      views: [{ offset: 0, label: 'gpt', id: opts.ids.diskGuid }],
    };
  }
  const [sig1, sig2] = opts.ids.mbrSignatures;
  const partitions = parts.map((r, i) => ({ number: i + 1, ...r, type: MBR_TYPE_LINUX.toString(16) }));
  if (!opts.dax) {
    return {
      writes: [{ offset: 0, bytes: buildMbr(mbrEntries(size, 0, verity), sig1), what: 'MBR' }],
      partitions,
      views: [{ offset: 0, label: 'dos', id: hex32(sig1) }],
    };
  }
  return {
    writes: [
      { offset: 0, bytes: buildMbr(mbrEntries(size, 0, verity), sig1), what: 'MBR #1 (virtio-blk view)' },
      { offset: PFN_SB_OFFSET, bytes: buildPfnSb({ dataOffset: DAX_HEADER, align: DAX_ALIGN }), what: 'DAX info block (struct nd_pfn_sb)' },
      { offset: DAX_HEADER, bytes: buildMbr(mbrEntries(size, DAX_HEADER, verity), sig2), what: 'MBR #2 (nvdimm view from 2 MiB)' },
    ],
    partitions,
    views: [
      { offset: 0, label: 'dos', id: hex32(sig1) },
      { offset: DAX_HEADER, label: 'dos', id: hex32(sig2) },
    ],
  };
}
