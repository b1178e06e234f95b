/**
 * Comparing two kernel configs symbol by symbol (pure): what one side sets
 * (y, m or a value) that the other leaves unset ("is not set" or absent), and
 * the symbols both set to different values, grouped by Kconfig menu when a
 * source tree is known, else by the fragment file a value comes from.
 */
import { mergeFragments, type Fragment } from './fragments.js';
import type { ConfigValues, KconfigTree } from './kconfig.js';

export type SideKind = 'config' | 'fragments' | 'ours-resolved' | 'ours-requested';

export interface DiffSide {
  /** What the user named: a path (absolute) or "ours". */
  source: string;
  kind: SideKind;
  /** Which config this is, in words (e.g. which fragments were read, which tree resolved it). */
  detail: string;
  /** symbol -> value as in a .config ('n' for "is not set"). */
  values: ConfigValues;
  /** Fragment sides: symbol -> the fragment file its value comes from. */
  files?: Map<string, string>;
}

export interface DiffGroup {
  menu: string;
  onlyLeft: Array<{ symbol: string; value: string }>;
  onlyRight: Array<{ symbol: string; value: string }>;
  differ: Array<{ symbol: string; left: string; right: string }>;
}

export interface ConfigDiff {
  left: { source: string; kind: SideKind; detail: string };
  right: { source: string; kind: SideKind; detail: string };
  /** Kconfig menus of `tree` (found by `from`), fragment file names, or one group. */
  grouping: { by: 'kconfig' | 'fragment' | 'none'; tree?: string; from?: string };
  groups: DiffGroup[];
  counts: { onlyLeft: number; onlyRight: number; differ: number; same: number };
}

/** The side argument that names our own config. */
export const OURS = 'ours';

export const UNGROUPED = '(no kernel tree: ungrouped)';
export const TOP_MENU = '(main menu)';
export const NOT_IN_TREE = '(not in this kernel tree)';

/** A side made of fragments merged in order (the last value of a symbol wins). */
export function fragmentSide(source: string, kind: SideKind, detail: string, fragments: Fragment[]): DiffSide {
  const { requested } = mergeFragments(fragments);
  return { source, kind, detail, values: new Map(requested.map((r) => [r.symbol, r.value])), files: new Map(requested.map((r) => [r.symbol, r.file])) };
}

/** A Kconfig tree's menus: symbol -> "Outer > Inner" path, in the order menus first appear. */
export interface MenuIndex {
  tree: string;
  /** How the tree was found (--kernel-dir, build cache). */
  from: string;
  menuOf: Map<string, string>;
  order: Map<string, number>;
}

export function menuIndex(tree: KconfigTree, from: string): MenuIndex {
  const menuOf = new Map<string, string>();
  const order = new Map<string, number>();
  for (const [name, defs] of tree.symbols) {
    const menu = defs[0]!.menus.join(' > ') || TOP_MENU;
    menuOf.set(name, menu);
    if (!order.has(menu)) order.set(menu, order.size);
  }
  return { tree: tree.srctree, from, menuOf, order };
}

function isSet(v: string | undefined): v is string {
  return v !== undefined && v !== 'n';
}

/** Compares two sides; groups by `menus` when given. */
export function diffConfigs(left: DiffSide, right: DiffSide, menus?: MenuIndex): ConfigDiff {
  const by: ConfigDiff['grouping']['by'] = menus ? 'kconfig' : left.files || right.files ? 'fragment' : 'none';
  const groups = new Map<string, DiffGroup>();
  const groupOf = (menu: string): DiffGroup => {
    let g = groups.get(menu);
    if (!g) groups.set(menu, (g = { menu, onlyLeft: [], onlyRight: [], differ: [] }));
    return g;
  };
  const menuFor = (symbol: string, file: string | undefined): string => (menus ? (menus.menuOf.get(symbol) ?? NOT_IN_TREE) : (file ?? UNGROUPED));
  let same = 0;
  const symbols = [...new Set([...left.values.keys(), ...right.values.keys()])].sort();
  for (const symbol of symbols) {
    const l = left.values.get(symbol);
    const r = right.values.get(symbol);
    // A fragment that says "is not set" names the file as well as one that sets it.
    const file = left.files?.get(symbol) ?? right.files?.get(symbol);
    if (isSet(l) && isSet(r)) {
      if (l === r) same++;
      else groupOf(menuFor(symbol, file)).differ.push({ symbol, left: l, right: r });
    } else if (isSet(l)) groupOf(menuFor(symbol, file)).onlyLeft.push({ symbol, value: l });
    else if (isSet(r)) groupOf(menuFor(symbol, file)).onlyRight.push({ symbol, value: r });
  }
  // Kconfig's menu order (file names sort by name); the catch-all groups last.
  const rank = (menu: string) => (menu === NOT_IN_TREE || menu === UNGROUPED ? Number.MAX_SAFE_INTEGER : (menus?.order.get(menu) ?? 0));
  const sorted = [...groups.values()].sort((a, b) => rank(a.menu) - rank(b.menu) || (a.menu < b.menu ? -1 : a.menu > b.menu ? 1 : 0));
  const side = (s: DiffSide) => ({ source: s.source, kind: s.kind, detail: s.detail });
  return {
    left: side(left),
    right: side(right),
    grouping: { by, ...(menus ? { tree: menus.tree, from: menus.from } : {}) },
    groups: sorted,
    counts: {
      onlyLeft: sorted.reduce((n, g) => n + g.onlyLeft.length, 0),
      onlyRight: sorted.reduce((n, g) => n + g.onlyRight.length, 0),
      differ: sorted.reduce((n, g) => n + g.differ.length, 0),
      same,
    },
  };
}
