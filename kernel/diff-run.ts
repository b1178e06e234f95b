/** `kernel diff`: reads both sides, resolves `ours` when asked for, and compares them grouped by Kconfig menu. */
import { resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { step, info } from '../core/log.js';
import type { Arch } from '../core/arch.js';
import { assembleConfig } from './assemble.js';
import { selectFragments } from './fragments.js';
import { treeVersion } from './version.js';
import { parseDotConfig } from './verify.js';
import { variantSuffix } from './state.js';
import { diffConfigs, fragmentSide, OURS, type ConfigDiff, type DiffSide, type MenuIndex } from './diff.js';
import { cachedKernelTree, kernelMenus, readSide } from './diff-input.js';
import { resolveVariant, type KernelOptions, type Variant } from './resolve.js';

export interface DiffOptions extends Pick<KernelOptions, 'arch' | 'gpu' | 'confidential' | 'kernelDir' | 'fragments'> {
  /** Each side: a .config file, a fragments directory, or "ours". */
  left: string;
  right: string;
}

/** Our config as one side: resolved in --kernel-dir when given, else the merged fragment request. */
async function oursSide(v: Variant, tree: string | undefined, extra: string[]): Promise<DiffSide> {
  const what = `${v.arch}${variantSuffix(v)}`;
  if (!tree) {
    const frags = selectFragments({ ...v, extra });
    return fragmentSide('ours', 'ours-requested', `our fragments for ${what} as requested (${frags.length} files), not resolved: no --kernel-dir given`, frags);
  }
  const version = await treeVersion(tree);
  const asm = await step(`assemble our .config for ${what} in ${tree}`, () => assembleConfig({ tree, ...v, extra }));
  const failed = asm.report.dropped.length + asm.report.unknown.length;
  const note =
    (failed ? `; ${failed} requested option(s) did not survive (osbuilder kernel config explains)` : '') +
    (asm.reused ? '; proven before, tree files unchanged' : '');
  return {
    source: 'ours',
    kind: 'ours-resolved',
    detail: `our .config for ${what} resolved by make olddefconfig in ${tree} (Linux ${version})${note}`,
    values: parseDotConfig(asm.config),
  };
}

/** Menus of a kernel tree in the build cache, if one is there and readable (grouping only: never fatal). */
function cachedMenus(arch: Arch): MenuIndex | undefined {
  const tree = cachedKernelTree(arch);
  try {
    return tree ? kernelMenus(tree, arch, 'build cache') : undefined;
  } catch (err) {
    if (!(err instanceof OsbuilderError)) throw err;
    info(`not grouping by Kconfig menu: ${err.message}`);
    return undefined;
  }
}

/**
 * Compares two kernel configs by symbol, grouped by Kconfig menu when a source
 * tree is known (--kernel-dir, else a tree in the build cache). Files are read
 * before `ours` is resolved, so bad input fails before any make runs.
 */
export async function diffKernel(opts: DiffOptions): Promise<ConfigDiff> {
  const v = resolveVariant(opts);
  const extra = (opts.fragments ?? []).map((f) => resolve(f));
  const tree = opts.kernelDir ? resolve(opts.kernelDir) : undefined;
  const read = (arg: string) => (arg === OURS ? undefined : readSide(arg, v.arch));
  const [left, right] = [read(opts.left), read(opts.right)];
  const menus = tree ? kernelMenus(tree, v.arch, '--kernel-dir') : cachedMenus(v.arch);
  const ours = left && right ? undefined : await oursSide(v, tree, extra);
  return diffConfigs(left ?? ours!, right ?? ours!, menus);
}
