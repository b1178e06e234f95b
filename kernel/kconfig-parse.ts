/**
 * The Kconfig statement parser: builds a KconfigTree's symbols from a file's
 * statements, following `source`, tracking the enclosing `if`/`menu`/`choice`
 * blocks whose conditions the symbols inside inherit.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { kconfigError, parseExpr, tokenize, type Expr, type Location, type Tok } from './kconfig-expr.js';
import { splitIf, statements, unquote, type Statement } from './kconfig-lines.js';
import type { Dependency, KconfigTree, SymbolDef } from './kconfig.js';

interface Block {
  kind: 'if' | 'menu' | 'choice';
  deps: Dependency[];
  visibleIf: Dependency[];
  loc: Location;
  /** Menu title, for `menu` and for the `if X` right after `menuconfig X`. */
  title?: string;
}

/** What the entries inside the current blocks inherit. */
interface Inherited {
  deps: Dependency[];
  visibleIf: Dependency[];
  menus: string[];
}

/** Where one file's parse stands. */
interface FileState {
  rel: string;
  /** The entry whose attributes we are reading. */
  cur?: SymbolDef;
  /** The menu/choice whose attributes we are reading. */
  block?: Block;
  /** An `if` on it right after its entry is a menu in menuconfig's UI. */
  lastMenuconfig?: SymbolDef;
  choice?: Location;
  outerChoices: Array<Location | undefined>;
}

const ATTR_RE =
  /^(bool|tristate|string|int|hex|def_bool|def_tristate|prompt|default|depends\s+on|select|imply|range|visible\s+if|option|modules|optional|transitional)\b\s*(.*)$/s;

/** A Kconfig file's text; undefined when it is optional and missing, or already read. */
function readKconfigFile(srctree: string, rel: string, optional: boolean, from?: Location): string | undefined {
  try {
    return readFileSync(join(srctree, rel), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const missing = code === 'ENOENT' || code === 'ENOTDIR';
    if (optional && missing) return undefined;
    throw kconfigError(
      `${from ? 'sourced ' : ''}Kconfig file ${rel} ${missing ? `does not exist in ${srctree}` : `cannot be read: ${(err as Error).message}`}`,
      from,
    );
  }
}

export class KconfigParser {
  private readonly stack: Block[] = [];
  private readonly seen = new Set<string>();
  // Block conditions change only at block boundaries and menu/choice attributes:
  // flattened once per change, the result shared between the entries inside.
  private cachedInherited: Inherited | undefined;

  constructor(
    private readonly tree: KconfigTree,
    private readonly vars: Record<string, string>,
  ) {}

  /** Reads and parses `rel` (relative to the tree) once, with the files it sources. */
  parseFile(rel: string, optional: boolean, from?: Location): void {
    const abs = join(this.tree.srctree, rel);
    if (this.seen.has(abs)) return;
    const content = readKconfigFile(this.tree.srctree, rel, optional, from);
    if (content === undefined) return;
    this.seen.add(abs);
    this.tree.paths.push(rel);
    const f: FileState = { rel, outerChoices: [] };
    for (const st of statements(content, rel)) this.statement(st, f);
  }

  private statement(st: Statement, f: FileState): void {
    const { word, rest, loc } = st;
    switch (word) {
      case 'config':
      case 'menuconfig':
        this.entry(word, rest.trim(), loc, f);
        break;
      case 'choice':
        this.openChoice(loc, f);
        break;
      case 'endchoice':
        f.cur = undefined;
        this.popBlock('choice', loc);
        f.choice = f.outerChoices.pop();
        f.block = undefined;
        break;
      case 'menu':
        f.cur = undefined;
        f.block = this.pushBlock({ kind: 'menu', deps: [], visibleIf: [], loc, title: unquote(this.subst(rest)) });
        break;
      case 'if':
        this.openIf(rest, loc, f);
        break;
      case 'endmenu':
      case 'endif':
        f.cur = undefined;
        this.popBlock(word === 'endif' ? 'if' : 'menu', loc);
        f.block = undefined;
        break;
      case 'comment':
      case 'mainmenu':
        f.cur = undefined;
        f.block = undefined; // a comment's own depends on are not symbol dependencies
        break;
      case 'source':
      case 'rsource':
      case 'osource':
      case 'orsource':
        this.source(word, rest, loc, f);
        break;
      default:
        this.attribute(st, f);
        break;
    }
  }

  private subst(s: string): string {
    return s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => this.vars[v] ?? m);
  }

  private inherited(): Inherited {
    this.cachedInherited ??= {
      deps: this.stack.flatMap((b) => b.deps),
      visibleIf: this.stack.flatMap((b) => b.visibleIf),
      menus: this.stack.flatMap((b) => (b.title ? [b.title] : [])),
    };
    return this.cachedInherited;
  }

  private pushBlock(block: Block): Block {
    this.stack.push(block);
    this.cachedInherited = undefined;
    return block;
  }

  private popBlock(kind: Block['kind'], loc: Location): void {
    this.cachedInherited = undefined;
    const top = this.stack.pop();
    if (!top || top.kind !== kind) throw kconfigError(`end${kind} without matching ${kind}`, loc);
  }

  private entry(word: 'config' | 'menuconfig', name: string, loc: Location, f: FileState): void {
    const inh = this.inherited();
    const sym: SymbolDef = {
      name,
      ...loc,
      prompts: [],
      deps: [...inh.deps],
      visibleIf: inh.visibleIf,
      defaults: [],
      selects: [],
      implies: [],
      ranges: [],
      menus: inh.menus,
    };
    if (f.choice) sym.choice = f.choice;
    f.cur = sym;
    f.lastMenuconfig = word === 'menuconfig' ? sym : undefined;
    const list = this.tree.symbols.get(name) ?? [];
    list.push(sym);
    this.tree.symbols.set(name, list);
    f.block = undefined;
  }

  private openChoice(loc: Location, f: FileState): void {
    f.cur = undefined;
    f.block = this.pushBlock({ kind: 'choice', deps: [], visibleIf: [], loc });
    f.outerChoices.push(f.choice);
    f.choice = loc;
  }

  private openIf(rest: string, loc: Location, f: FileState): void {
    const cur = f.cur;
    const title = cur && cur === f.lastMenuconfig && cur.name === rest.trim() ? cur.prompts[0]?.text : undefined;
    f.cur = undefined;
    this.pushBlock({ kind: 'if', deps: [{ origin: 'if', expr: parseExpr(this.subst(rest), loc), ...loc }], visibleIf: [], loc, ...(title ? { title } : {}) });
    f.block = undefined;
  }

  private source(word: string, rest: string, loc: Location, f: FileState): void {
    f.cur = undefined;
    f.block = undefined;
    const target = this.subst(unquote(rest));
    const relTarget = word.startsWith('r') || word.startsWith('or') ? join(dirname(f.rel), target) : target;
    this.parseFile(normalize(relTarget), word.startsWith('o'), loc);
  }

  /** Macro assignments and unknown keywords are skipped; attributes of a comment block too. */
  private attribute(st: Statement, f: FileState): void {
    const attr = ATTR_RE.exec(st.text);
    if (!attr) return;
    const name = attr[1]!.replace(/\s+/g, ' ');
    const arg = this.subst(attr[2]!);
    if (f.block && !f.cur) this.blockAttribute(f.block, name, arg, st.loc);
    else if (f.cur) this.symbolAttribute(f.cur, name, arg, st.loc);
  }

  private blockAttribute(block: Block, name: string, arg: string, loc: Location): void {
    if (name === 'depends on') block.deps.push({ origin: block.kind === 'menu' ? 'menu' : 'choice', expr: parseExpr(arg, loc), ...loc });
    else if (name === 'visible if') block.visibleIf.push({ origin: 'menu', expr: parseExpr(arg, loc), ...loc });
    this.cachedInherited = undefined;
  }

  private symbolAttribute(sym: SymbolDef, name: string, arg: string, loc: Location): void {
    switch (name) {
      case 'bool':
      case 'tristate':
      case 'string':
      case 'int':
      case 'hex':
        sym.type = name;
        if (arg.trim()) addPrompt(sym, arg, loc);
        break;
      case 'def_bool':
      case 'def_tristate':
        sym.type = name === 'def_bool' ? 'bool' : 'tristate';
        addDefault(sym, arg, loc);
        break;
      case 'prompt':
        addPrompt(sym, arg, loc);
        break;
      case 'default':
        addDefault(sym, arg, loc);
        break;
      case 'depends on':
        sym.deps.push({ origin: 'depends on', expr: parseExpr(arg, loc), ...loc });
        break;
      case 'select':
      case 'imply':
        this.addReverse(sym, name, arg, loc);
        break;
      case 'range':
        addRange(sym, arg, loc);
        break;
      default:
        break; // option, modules, optional, transitional
    }
  }

  private addReverse(sym: SymbolDef, kind: 'select' | 'imply', arg: string, loc: Location): void {
    const { head, cond } = splitIf(arg, loc);
    const target = head.trim();
    (kind === 'select' ? sym.selects : sym.implies).push({ target, cond, ...loc });
    const rev = this.tree.reverse.get(target) ?? [];
    rev.push({ by: sym.name, kind, cond, ...loc });
    this.tree.reverse.set(target, rev);
  }
}

function addPrompt(sym: SymbolDef, arg: string, loc: Location): void {
  const { head, cond } = splitIf(arg, loc);
  sym.prompts.push({ text: unquote(head), cond, ...loc });
}

function addDefault(sym: SymbolDef, arg: string, loc: Location): void {
  const { head, cond } = splitIf(arg, loc);
  sym.defaults.push({ value: parseExpr(head, loc), cond, ...loc });
}

function addRange(sym: SymbolDef, arg: string, loc: Location): void {
  const { head, cond } = splitIf(arg, loc);
  const parts = tokenize(head);
  if (parts.length < 2) return;
  const toExpr = (t: Tok): Expr => (t.t === 'word' && !/^(-?\d+|0x[0-9a-fA-F]+)$/.test(t.v) ? { k: 'sym', name: t.v } : { k: 'const', value: t.v });
  sym.ranges.push({ min: toExpr(parts[0]!), max: toExpr(parts[1]!), cond, ...loc });
}
