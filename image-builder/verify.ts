/** Checks of a finished image with independent tools (sfdisk) and our own parsers. */
import { open, rm } from 'node:fs/promises';
import { run } from '../core/exec.js';
import { OsbuilderError } from '../core/errors.js';
import { MiB } from '../core/vocab.js';
import { pfnSbProblems, PFN_SB_OFFSET, PFN_SB_SIZE } from './dax.js';
import type { TablePlan } from './layout.js';
import { SECTOR } from './mbr.js';

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  bootable?: boolean;
}

export interface SfdiskTable {
  label: 'dos' | 'gpt' | string;
  id: string;
  unit: string;
  sectorsize?: number;
  partitions: SfdiskPartition[];
}

/** `sfdisk -J` of a file; a warning on stderr (bad CRC, overlapping partitions…) is a failure. */
export async function sfdiskDump(file: string): Promise<SfdiskTable> {
  const r = await run('sfdisk', ['-J', file], { hint: 'the partition table was not written correctly: this is a bug in osbuilder' });
  if (r.stderr.trim())
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `sfdisk warns about ${file}:\n${r.stderr.trim()}`,
      'this is a bug in osbuilder: rerun with --debug and report it',
    );
  const parsed = JSON.parse(r.stdout) as { partitiontable: SfdiskTable };
  return { ...parsed.partitiontable, partitions: parsed.partitiontable.partitions ?? [] };
}

/** Differences between what sfdisk read at `viewOffset` and the planned partitions. */
export function tableProblems(dump: SfdiskTable, plan: TablePlan, viewOffset: number): string[] {
  const view = plan.views.find((v) => v.offset === viewOffset);
  if (!view) return [`no partition table planned at byte ${viewOffset}`];
  const problems: string[] = [];
  if (dump.label !== view.label) problems.push(`label ${dump.label}, expected ${view.label}`);
  if (dump.id.toLowerCase() !== view.id.toLowerCase()) problems.push(`disk id ${dump.id}, expected ${view.id}`);
  if (dump.partitions.length !== plan.partitions.length) problems.push(`${dump.partitions.length} partitions, expected ${plan.partitions.length}`);
  plan.partitions.forEach((p, i) => {
    const d = dump.partitions[i];
    if (!d) return;
    const start = (p.start - viewOffset) / SECTOR;
    const size = p.size / SECTOR;
    if (d.start !== start || d.size !== size) problems.push(`partition ${p.number}: sectors ${d.start}+${d.size}, expected ${start}+${size}`);
    if (d.type.toLowerCase() !== p.type.toLowerCase()) problems.push(`partition ${p.number}: type ${d.type}, expected ${p.type}`);
    if (p.uuid && d.uuid?.toLowerCase() !== p.uuid.toLowerCase()) problems.push(`partition ${p.number}: uuid ${d.uuid}, expected ${p.uuid}`);
  });
  return problems;
}

/**
 * A file that shows `image` from byte `offset` on, as the guest sees the
 * nvdimm namespace data (pmem0) — sparse, same size, holding only the first
 * MiB (the partition table) — for sfdisk to read.
 */
async function viewFile(image: string, offset: number, totalBytes: number, path: string): Promise<void> {
  const head = Buffer.alloc(MiB);
  const src = await open(image, 'r');
  try {
    await src.read(head, 0, head.length, offset);
  } finally {
    await src.close();
  }
  const dst = await open(path, 'w');
  try {
    await dst.truncate(totalBytes - offset);
    await dst.write(head, 0, head.length, 0);
  } finally {
    await dst.close();
  }
}

/**
 * sfdisk reads every planned view (byte 0, and 2 MiB with DAX) as planned.
 * The path of each view file is pushed to `scratch` before the file is made,
 * so that the caller's interrupt cleanup removes it too.
 */
export async function verifyTables(image: string, plan: TablePlan, totalBytes: number, scratch: string[] = []): Promise<void> {
  for (const view of plan.views) {
    let file = image;
    if (view.offset !== 0) {
      file = `${image}.view-${view.offset}`;
      scratch.push(file);
      await viewFile(image, view.offset, totalBytes, file);
    }
    try {
      const problems = tableProblems(await sfdiskDump(file), plan, view.offset);
      if (problems.length) {
        throw new OsbuilderError(
          'VERIFY_FAILED',
          `partition table at byte ${view.offset} of ${image} is not as planned: ${problems.join('; ')}`,
          'this is a bug in osbuilder: rerun with --debug and report it',
        );
      }
    } finally {
      if (file !== image) await rm(file, { force: true });
    }
  }
}

/** Re-reads the DAX info block and applies nd_pfn_validate()'s checks to it. */
export async function verifyDax(image: string, totalBytes: number): Promise<void> {
  const block = Buffer.alloc(PFN_SB_SIZE);
  const fh = await open(image, 'r');
  try {
    await fh.read(block, 0, PFN_SB_SIZE, PFN_SB_OFFSET);
  } finally {
    await fh.close();
  }
  const problems = pfnSbProblems(block, totalBytes);
  if (problems.length)
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `DAX info block at 4 KiB is invalid: ${problems.join('; ')}`,
      'this is a bug in osbuilder: rerun with --debug and report it',
    );
}
