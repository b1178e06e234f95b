/**
 * What `kernel diff` compares and groups by: a .config file, a fragments
 * directory (Kata's common/ + <arch>/ layout, or a flat directory of *.conf),
 * and the Kconfig tree that names the menus (--kernel-dir, or a tree that
 * `osbuilder build` keeps in the build cache).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { cacheRoot } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { ARCH_FACTS, type Arch } from '../core/arch.js';
import { KERNEL_ARCH } from './arch.js';
import { fragmentSide, menuIndex, type DiffSide, type MenuIndex } from './diff.js';
import { archMatches, parseFragment, type Fragment } from './fragments.js';
import { readKconfig } from './kconfig.js';

const SIDE_HINT = 'give a kernel .config file, a fragments directory (common/*.conf + <arch>/*.conf, or *.conf files), or the word ours';

function unreadable(path: string, err: unknown): OsbuilderError {
  return new OsbuilderError('INPUT_INVALID', `${path} cannot be read: ${(err as Error).message}`, 'check the path and its permissions', { cause: err });
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw unreadable(path, err);
  }
}

function kindOf(path: string): 'dir' | 'file' | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st?.isDirectory() ? 'dir' : st?.isFile() ? 'file' : undefined;
  } catch {
    return undefined; // unreadable parent: reading it reports why
  }
}

const isDir = (path: string) => kindOf(path) === 'dir';
const isFile = (path: string) => kindOf(path) === 'file';

/** Parses with the fragment parser; anything it rejects is INPUT_INVALID naming file:line. */
function parseConfigText(name: string, text: string): Fragment {
  if (text.includes('\0')) throw new OsbuilderError('INPUT_INVALID', `${name} is a binary file, not a kernel config`, SIDE_HINT);
  try {
    return parseFragment(name, text);
  } catch (err) {
    if (!(err instanceof OsbuilderError)) throw err;
    throw new OsbuilderError('INPUT_INVALID', `not a kernel config: ${err.message}`, SIDE_HINT, { cause: err });
  }
}

export function readConfigFile(path: string): DiffSide {
  const frag = parseConfigText(path, readText(path));
  if (frag.entries.length === 0) throw new OsbuilderError('INPUT_INVALID', `${path} has no CONFIG_ lines: not a kernel config`, SIDE_HINT);
  return {
    source: path,
    kind: 'config',
    detail: `.config file, ${frag.entries.length} symbols`,
    values: new Map(frag.entries.map((e) => [e.symbol, e.value])),
  };
}

function confFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw unreadable(dir, err);
  }
  return names
    .filter((n) => n.endsWith('.conf') && isFile(join(dir, n)))
    .sort()
    .map((n) => join(dir, n));
}

/** Kata's build-kernel.sh leaves out a common fragment that says `!<arch>` anywhere in it. */
function kataExcludes(text: string, arch: Arch): boolean {
  const names = new Set([arch, ARCH_FACTS[arch].kernelArch, ARCH_FACTS[arch].srcarch]);
  return [...text.matchAll(/!([A-Za-z0-9_]+)/g)].some((m) => names.has(m[1]!));
}

/** Kata's layout (common/*.conf then <arch>/*.conf) when there is a common/, else every *.conf in `dir`. */
export function readFragmentsDir(dir: string, arch: Arch): DiffSide {
  let files: string[];
  let layout: string;
  if (isDir(join(dir, 'common'))) {
    const info = { ...KERNEL_ARCH[arch], ...ARCH_FACTS[arch] };
    const archDir = [info.fragmentDir, info.kernelArch, info.srcarch].find((d) => isDir(join(dir, d)));
    files = [...confFiles(join(dir, 'common')), ...(archDir ? confFiles(join(dir, archDir)) : [])];
    layout = `common/*.conf + ${archDir ? `${archDir}/*.conf` : `no ${info.fragmentDir}/ directory`}`;
  } else {
    files = confFiles(dir);
    layout = '*.conf';
  }
  if (files.length === 0) throw new OsbuilderError('INPUT_INVALID', `${dir} holds no *.conf fragments (${layout})`, SIDE_HINT);
  const used: Fragment[] = [];
  for (const file of files) {
    const text = readText(file);
    const frag = parseConfigText(relative(dir, file), text);
    if (archMatches(frag.arches, arch) && !kataExcludes(text, arch)) used.push(frag);
  }
  const left = files.length - used.length;
  return fragmentSide(dir, 'fragments', `fragments (${layout}): ${used.length} file(s)${left ? `, ${left} left out for ${arch}` : ''}`, used);
}

/** A path argument: a fragments directory or a .config file. */
export function readSide(arg: string, arch: Arch): DiffSide {
  const path = resolve(arg);
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new OsbuilderError('INPUT_NOT_FOUND', `${arg} does not exist`, SIDE_HINT);
  return st.isDirectory() ? readFragmentsDir(path, arch) : readConfigFile(path);
}

/**
 * The newest default-variant kernel tree for `arch` that `osbuilder build`
 * keeps in the build cache (<cache>/kernel-trees/linux-<version>-<arch>), if any.
 */
export function cachedKernelTree(arch: Arch, root = cacheRoot()): string | undefined {
  const dir = join(root, 'kernel-trees');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const suffix = `-${arch}`;
  const trees = names.filter((n) => n.startsWith('linux-') && n.endsWith(suffix) && isFile(join(dir, n, 'Kconfig')));
  trees.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return trees.length ? join(dir, trees.at(-1)!) : undefined;
}

/** The Kconfig menus of a source tree, read for `arch`. */
export function kernelMenus(tree: string, arch: Arch, from: string): MenuIndex {
  if (!isFile(join(tree, 'Kconfig'))) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${tree} is not a kernel source tree (no Kconfig file)`,
      'give --kernel-dir the top directory of a kernel source tree, or leave it out',
    );
  }
  return menuIndex(readKconfig(tree, { srcarch: ARCH_FACTS[arch].srcarch, arch: ARCH_FACTS[arch].kernelArch }), from);
}
