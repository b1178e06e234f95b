/**
 * File stamps: a file's device, inode, size, mtime and ctime. A sha256 known
 * under a stamp still holds while the stamp is unchanged: ctime cannot be set
 * by a user, so a file changed in place gets a new stamp even when its size
 * and mtime are restored. A stamp is trusted only when its ctime is older than
 * the filesystem clock read before the stat (a change within the same
 * timestamp tick would not show).
 */
import type { BigIntStats } from 'node:fs';
import { lstat, open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { onInterrupt } from './cleanup.js';
import { ownerTag } from './owner.js';

/** What a file's stat says, and the sha256 its content had under that stat. */
export interface Stamped {
  stamp: string;
  ctimeNs: bigint;
  sha256: string;
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
  const remove = () => rm(probe, { force: true });
  const unregister = onInterrupt(remove);
  try {
    const fh = await open(probe, 'wx');
    try {
      return (await fh.stat({ bigint: true })).ctimeNs;
    } finally {
      await fh.close();
    }
  } finally {
    await remove();
    unregister();
  }
}
