/** SHA256SUMS and manifest.json for an install tree. */
import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { sha256File } from '../core/hash.js';

/** Every regular file below `root` (symlinks are not listed: their targets are), sorted. */
export async function regularFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) out.push(relative(root, p));
    }
  }
  await walk(root);
  return out.sort();
}

/** `sha256sum`-compatible lines ("<hex>  <path>"), paths relative to `root`. */
export async function sha256sums(root: string, exclude: string[] = []): Promise<string> {
  const lines: string[] = [];
  for (const rel of await regularFiles(root)) {
    if (exclude.includes(rel)) continue;
    lines.push(`${await sha256File(join(root, rel))}  ${rel}`);
  }
  return lines.join('\n') + '\n';
}
