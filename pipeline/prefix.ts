/**
 * The install root, checked before any work starts: a build takes minutes, so
 * a --prefix that cannot take the install must fail at once, with the reason.
 */
import { mkdtemp, realpath, rmdir, stat } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { OsbuilderError } from '../core/errors.js';

const PSEUDO_FS = ['/proc', '/sys'];

/** The kernel's pseudo filesystem that `path` lies in, if any (pure). */
export function pseudoFsOf(path: string): string | undefined {
  return PSEUDO_FS.find((d) => path === d || path.startsWith(d + sep));
}

function refuse(prefix: string, why: string, hint = 'choose another --prefix'): OsbuilderError {
  return new OsbuilderError('INPUT_INVALID', `--prefix ${prefix}: ${why}`, hint);
}

/** The deepest path of `dir` and its parents that exists (following links). */
async function nearestExisting(dir: string): Promise<{ path: string; isDir: boolean }> {
  for (let p = dir; ; p = dirname(p)) {
    try {
      return { path: p, isDir: (await stat(p)).isDirectory() };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || p === dirname(p)) throw err;
    }
  }
}

/** Creates and removes a directory in `dir`: the one test of writability that a read-only mount or an ACL cannot fool. */
async function probeWritable(prefix: string, dir: string): Promise<void> {
  try {
    await rmdir(await mkdtemp(join(dir, '.osbuilder-probe-')));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS') throw refuse(prefix, `${dir} is on a read-only file system`);
    if (code === 'EACCES' || code === 'EPERM')
      throw refuse(prefix, `${dir} is not writable by this user`, 'choose a --prefix you can write to (e.g. ./out), or run as its owner');
    throw refuse(prefix, `cannot create a directory in ${dir} (${code ?? (err as Error).message})`);
  }
}

/**
 * Each directory the install switches in must be a directory or creatable,
 * outside /proc and /sys, with a writable place to stage it.
 */
export async function checkPrefix(prefix: string, installDirs: string[]): Promise<void> {
  const early = pseudoFsOf(prefix);
  if (early) throw refuse(prefix, `${early} is the kernel's pseudo file system, not a place to install files`);
  for (const dir of installDirs) {
    const found = await nearestExisting(dir);
    if (!found.isDir) throw refuse(prefix, `${found.path} is not a directory`, `remove ${found.path} or choose another --prefix`);
    const pseudo = pseudoFsOf(await realpath(found.path));
    if (pseudo) throw refuse(prefix, `${found.path} leads into ${pseudo}, the kernel's pseudo file system`);
    // An existing tree is replaced by a rename in its parent; a missing one is created from `found`.
    await probeWritable(prefix, found.path === dir ? dirname(dir) : found.path);
  }
}
