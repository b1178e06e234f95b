/**
 * The install record: for each installed file, its sha256 and the stat it had
 * when that sha256 was known (written by us from a verified cache entry, or
 * hashed). A warm build trusts a recorded sha256 only while the file's device,
 * inode, size, mtime and ctime are all unchanged, so it hashes only what
 * changed. ctime cannot be set by a user: a file changed in place is re-hashed
 * even when its size and mtime were restored. A file whose ctime is not older
 * than the clock probe taken before its stat is left out (a change within the
 * same timestamp tick would not show) and is hashed next time.
 * The record lives in the build cache (install-records/, one file per install
 * root), so the install tree holds nothing but Kata's files; a pruned record
 * only means hashing everything once.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { cacheRoot } from '../core/cache.js';
import { sha256 } from '../core/hash.js';
import { atomicOutput } from '../core/atomic.js';
import type { Stamped } from '../core/stamp.js';

/** Relative path -> recorded stamp and sha256. */
export type Known = Map<string, { stamp: string; sha256: string }>;

export function recordPath(root: string): string {
  return join(cacheRoot(), 'install-records', `${sha256(resolve(root)).slice(0, 32)}.json`);
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
  await mkdir(dirname(recordPath(root)), { recursive: true });
  await atomicOutput(recordPath(root), (tmp) => writeFile(tmp, `${JSON.stringify(obj, null, 1)}\n`));
}
