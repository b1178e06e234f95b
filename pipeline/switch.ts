/**
 * Atomic replacement of install directories. A new tree is fully staged beside
 * its destination, then swapped in with renames; the previous tree is removed
 * only after every swap succeeded. An existing tree that differs from the new
 * one is kept unless `force`.
 */
import { lstat, mkdir, readdir, readlink, rename, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { stampFile, type Stamped } from '../core/stamp.js';
import type { Known } from './record.js';

/**
 * A tree's content: relative path -> "file:<sha256>" | "link:<target>" | "dir".
 * With `metadata`, each value also carries mode, owner and mtime (what an
 * image or archive of the tree records). A file whose stamp matches `known`
 * takes its recorded sha256 instead of being hashed; `seen` collects every
 * file's stamp and sha256 (for a new record).
 */
export async function treeDigest(root: string, opts: { metadata?: boolean; known?: Known; seen?: Map<string, Stamped> } = {}): Promise<Map<string, string>> {
  async function fileSha(p: string, rel: string): Promise<string> {
    if (!opts.known && !opts.seen) return sha256File(p);
    const s = await stampFile(p);
    const k = opts.known?.get(rel);
    const sha = k?.stamp === s.stamp ? k.sha256 : await sha256File(p);
    opts.seen?.set(rel, { ...s, sha256: sha });
    return sha;
  }
  const out = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const rel = relative(root, p);
      const st = await lstat(p);
      const meta = opts.metadata ? ` mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} mtime=${Math.floor(st.mtimeMs / 1000)}` : '';
      if (st.isSymbolicLink()) out.set(rel, `link:${await readlink(p)}${meta}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir${meta}`);
        await walk(p);
      } else out.set(rel, `${st.isFile() ? `file:${await fileSha(p, rel)}` : `special:${st.rdev}`}${meta}`);
    }
  }
  await walk(root);
  return out;
}

export function firstDifference(a: Map<string, string>, b: Map<string, string>): string | undefined {
  for (const [k, v] of a) if (b.get(k) !== v) return k;
  for (const k of b.keys()) if (!a.has(k)) return k;
  return undefined;
}

export interface SwitchPair {
  /** Fully staged directory. */
  staged: string;
  /** Where it goes. */
  dest: string;
}

export type SwitchOutcome = 'installed' | 'replaced' | 'unchanged';

/**
 * Swaps every staged tree into place. Refuses (OUTPUT_EXISTS) when a destination
 * exists with different content and `force` is false; then nothing changes.
 */
export async function switchTrees(pairs: SwitchPair[], force: boolean): Promise<SwitchOutcome> {
  let existing = 0;
  let differing = 0;
  for (const { staged, dest } of pairs) {
    if (!(await lstat(dest).catch(() => undefined))) continue;
    existing++;
    const diff = firstDifference(await treeDigest(dest), await treeDigest(staged));
    if (diff === undefined) continue;
    differing++;
    if (!force) {
      throw new OsbuilderError(
        'OUTPUT_EXISTS',
        `${dest} already holds a different install (first difference: ${diff})`,
        'pass -f/--force to replace it, or choose another --prefix',
      );
    }
  }
  if (existing === pairs.length && differing === 0) {
    for (const { staged } of pairs) await rm(staged, { recursive: true, force: true });
    return 'unchanged';
  }
  const olds: string[] = [];
  for (const { staged, dest } of pairs) {
    await mkdir(dirname(dest), { recursive: true });
    const old = `${staged}.old`;
    if (await lstat(dest).catch(() => undefined)) {
      await rename(dest, old);
      olds.push(old);
    }
    await rename(staged, dest);
  }
  for (const old of olds) await rm(old, { recursive: true, force: true });
  return existing > 0 ? 'replaced' : 'installed';
}
