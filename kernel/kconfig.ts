/**
 * A small reader for the kernel's Kconfig language, enough to explain why a
 * requested option did not survive `make olddefconfig`: it records, for every
 * symbol, its type, prompts (with their `if` conditions), `depends on` clauses
 * plus the conditions inherited from enclosing `if`/`menu`/`choice` blocks, its
 * defaults, who `select`s it, and the menus it sits in. Expressions are evaluated against a final
 * .config with Kconfig's tristate logic (n=0, m=1, y=2; && = min, || = max, !x = 2-x).
 *
 * Covered syntax (Documentation/kbuild/kconfig-language.rst): config, menuconfig,
 * choice/endchoice, menu/endmenu (depends on, visible if), if/endif, comment,
 * source/rsource/osource/orsource with $(SRCARCH)/$(ARCH) substituted, help
 * blocks, line continuations, macro assignments (skipped), $(…) macro calls
 * (kept opaque: toolchain tests are not reproduced).
 *
 * The work is split: kconfig-lines (statements), kconfig-expr (expressions),
 * kconfig-parse (statements to symbols), kconfig-eval (evaluation); this module
 * is their public face.
 */
import type { Expr, Location } from './kconfig-expr.js';
import { KconfigParser } from './kconfig-parse.js';

export { conjuncts, exprSymbols, formatExpr, parseExpr, type Expr, type Location } from './kconfig-expr.js';
export { evalExpr, type ConfigValues, type Tristate } from './kconfig-eval.js';

export type SymbolType = 'bool' | 'tristate' | 'string' | 'int' | 'hex';

/** One condition a definition depends on, with where it comes from. */
export interface Dependency extends Location {
  origin: 'depends on' | 'if' | 'menu' | 'choice';
  expr: Expr;
}

export interface SymbolDef extends Location {
  name: string;
  type?: SymbolType;
  prompts: Array<{ text: string; cond?: Expr } & Location>;
  /** Own `depends on` clauses followed by inherited block conditions. */
  deps: Dependency[];
  /** `visible if` of enclosing menus: they hide prompts without being dependencies. */
  visibleIf: Dependency[];
  defaults: Array<{ value: Expr; cond?: Expr } & Location>;
  selects: Array<{ target: string; cond?: Expr } & Location>;
  implies: Array<{ target: string; cond?: Expr } & Location>;
  ranges: Array<{ min: Expr; max: Expr; cond?: Expr } & Location>;
  /** Set when the symbol is a member of a choice block. */
  choice?: Location;
  /** Titles of the enclosing menus, outermost first (a `menuconfig X` + `if X` block counts as menu X). */
  menus: string[];
}

export interface ReverseDep extends Location {
  by: string;
  kind: 'select' | 'imply';
  cond?: Expr;
}

export interface KconfigTree {
  srctree: string;
  srcarch: string;
  symbols: Map<string, SymbolDef[]>;
  /** target symbol -> symbols that select/imply it. */
  reverse: Map<string, ReverseDep[]>;
  /** The Kconfig files read, relative to the tree. */
  paths: string[];
}

export interface ReadKconfigOptions {
  /** Kernel SRCARCH (x86, arm64, powerpc, s390). */
  srcarch: string;
  /** Value of $(ARCH) (x86_64, arm64, powerpc, s390). */
  arch?: string;
  /** Top-level file, relative to srctree (default "Kconfig"). */
  root?: string;
  /** Extra macro values ($(KERNELVERSION) etc.). */
  vars?: Record<string, string>;
}

/** Reads the Kconfig tree reachable from `root` for one architecture. */
export function readKconfig(srctree: string, opts: ReadKconfigOptions): KconfigTree {
  const vars: Record<string, string> = {
    SRCARCH: opts.srcarch,
    ARCH: opts.arch ?? opts.srcarch,
    HEADER_ARCH: opts.srcarch,
    srctree: '.',
    ...(opts.vars ?? {}),
  };
  const tree: KconfigTree = { srctree, srcarch: opts.srcarch, symbols: new Map(), reverse: new Map(), paths: [] };
  new KconfigParser(tree, vars).parseFile(opts.root ?? 'Kconfig', false);
  return tree;
}
