/** Kernel versions: validation, kernel.org URLs (Kata's get_kernel), and reading a tree's Makefile. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';

const VERSION_RE = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/;

/** Normalises "v6.1.19" -> "6.1.19"; anything else is INPUT_INVALID. */
export function parseKernelVersion(v: string): string {
  const m = VERSION_RE.exec(v.trim());
  if (!m) {
    throw new OsbuilderError('INPUT_INVALID', `malformed kernel version ${JSON.stringify(v)}`, 'give MAJOR.MINOR[.PATCH], e.g. -v 6.1 or -v 6.1.62');
  }
  return m
    .slice(1)
    .filter((x) => x !== undefined)
    .join('.');
}

/** kernel.org release tarball, as build-kernel.sh downloads it. */
export function kernelOrgUrl(version: string, mirror = 'https://cdn.kernel.org/pub/linux/kernel'): string {
  const major = version.split('.')[0]!;
  return `${mirror}/v${major}.x/linux-${version}.tar.xz`;
}

/** The signed checksum list next to the tarballs (Kata greps the tarball's line from it). */
export function kernelOrgSumsUrl(version: string, mirror = 'https://cdn.kernel.org/pub/linux/kernel'): string {
  return `${mirror}/v${version.split('.')[0]!}.x/sha256sums.asc`;
}

/** "<sha256>  linux-6.1.62.tar.xz" line lookup in sha256sums.asc. */
export function checksumFromSums(sums: string, file: string): string | undefined {
  for (const line of sums.split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(\S+)\s*$/.exec(line.trim());
    if (m && m[2] === file) return m[1];
  }
  return undefined;
}

/** VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION] from the top Makefile (what `make kernelversion` prints). */
export function versionFromMakefile(text: string): string | undefined {
  const get = (k: string) => new RegExp(`^${k}\\s*=\\s*(\\S*)\\s*$`, 'm').exec(text)?.[1] ?? '';
  const v = get('VERSION');
  const p = get('PATCHLEVEL');
  if (!/^\d+$/.test(v) || !/^\d+$/.test(p)) return undefined;
  const s = get('SUBLEVEL');
  return `${v}.${p}${s && s !== '0' ? `.${s}` : s === '0' ? '.0' : ''}${get('EXTRAVERSION')}`;
}

export async function treeVersion(tree: string): Promise<string> {
  const text = await readFile(join(tree, 'Makefile'), 'utf8').catch(() => undefined);
  const v = text === undefined ? undefined : versionFromMakefile(text);
  if (!v)
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${tree} is not a kernel source tree (no VERSION/PATCHLEVEL in its Makefile)`,
      'point --source at a kernel tarball',
    );
  return v;
}

/** True when `requested` (6.1 or 6.1.62) names `actual` (6.1.62). */
export function versionMatches(requested: string, actual: string): boolean {
  return actual === requested || actual.startsWith(`${requested}.`);
}
