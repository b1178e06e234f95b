/**
 * The install record: for each installed file, its sha256 and the stat it had
 * when that sha256 was known (written by us from a verified cache entry, or
 * hashed). A warm build trusts a recorded sha256 only while the file's device,
 * inode, size, mtime and ctime are all unchanged, so it hashes only what
 * changed. ctime cannot be set by a user: a file changed in place is re-hashed
 * even when its size and mtime were restored. A file whose ctime is not older
 * than the clock probe taken before its stat is left out (a change within the
 * same timestamp tick would not show) and is hashed next time.
 * The record is `.<root>.record.json` beside each install root.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, open, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { atomicOutput } from '../core/atomic.js';
import { ownerTag } from '../core/owner.js';

/** What a file's stat says, and the sha256 its content had under that stat. */
export interface Stamped {
  stamp: string;
  ctimeNs: bigint;
  sha256: string;
}

/** Relative path -> recorded stamp and sha256. */
export type Known = Map<string, { stamp: string; sha256: string }>;

export function recordPath(root: string): string {
  return join(dirname(root), `.${basename(root)}.record.json`);
}

function stampOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

export async function stampFile(path: string): Promise<{ stamp: string; ctimeNs: bigint }> {
  const st = await lstat(path, { bigint: true });
  return { stamp: stampOf(st), ctimeNs: st.ctimeNs };
}

/** The filesystem's clock beside `near`: the ctime of a file created there now. */
export async function fsClock(near: string): Promise<bigint> {
  const probe = join(dirname(near), `.${basename(near)}.clock.tmp-${ownerTag()}`);
  const fh = await open(probe, 'wx');
  try {
    return (await fh.stat({ bigint: true })).ctimeNs;
  } finally {
    await fh.close();
    await rm(probe, { force: true });
  }
}

/** The record of `root`; empty when missing or unreadable (then every file is hashed). */
export async function readRecord(root: string): Promise<Known> {
  try {
    const obj = JSON.parse(await readFile(recordPath(root), 'utf8')) as Record<string, { stamp: string; sha256: string }>;
    return new Map(Object.entries(obj).filter(([, v]) => typeof v?.stamp === 'string' && typeof v.sha256 === 'string'));
  } catch {
    return new Map();
  }
}

/** Records the files whose ctime is older than `clock` (taken before their stat). */
export async function writeRecord(root: string, files: Map<string, Stamped>, clock: bigint): Promise<void> {
  const obj: Record<string, { stamp: string; sha256: string }> = {};
  for (const [rel, f] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) if (f.ctimeNs < clock) obj[rel] = { stamp: f.stamp, sha256: f.sha256 };
  await atomicOutput(recordPath(root), (tmp) => writeFile(tmp, JSON.stringify(obj, null, 1) + '\n'));
}
