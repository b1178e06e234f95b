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
 */
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { OsbuilderError } from '../core/errors.js';

export type Expr =
  | { k: 'sym'; name: string }
  | { k: 'const'; value: string }
  | { k: 'macro'; text: string }
  | { k: 'not'; e: Expr }
  | { k: 'and'; a: Expr; b: Expr }
  | { k: 'or'; a: Expr; b: Expr }
  | { k: 'cmp'; op: '=' | '!=' | '<' | '<=' | '>' | '>='; a: Expr; b: Expr };

export type SymbolType = 'bool' | 'tristate' | 'string' | 'int' | 'hex';

export interface Location {
  file: string;
  line: number;
}

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
  files: number;
}

// ---------------------------------------------------------------- expressions

function kconfigError(message: string, at?: Location): OsbuilderError {
  return new OsbuilderError('KERNEL_CONFIG', at ? `Kconfig ${at.file}:${at.line}: ${message}` : message, 'is this a complete, unmodified kernel source tree?');
}

/** Far above any kernel's longest expression (59 tokens in 6.1); bounds the parser's recursion. */
const MAX_EXPR_TOKENS = 1000;

type Tok = { t: 'word' | 'str' | 'op' | 'macro'; v: string };

function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '$' && text[i + 1] === '(') {
      let depth = 0;
      let j = i + 1;
      for (; j < text.length; j++) {
        if (text[j] === '(') depth++;
        else if (text[j] === ')' && --depth === 0) break;
      }
      out.push({ t: 'macro', v: text.slice(i, j + 1) });
      i = j + 1;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) j++;
        s += text[j];
        j++;
      }
      out.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (['&&', '||', '!=', '<=', '>='].includes(two)) {
      out.push({ t: 'op', v: two });
      i += 2;
      continue;
    }
    if ('!()=<>'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
      continue;
    }
    let j = i;
    while (j < text.length && !/[\s!()=<>&|"']/.test(text[j]!)) j++;
    if (j === i) j = i + 1; // stray character: keep going
    out.push({ t: 'word', v: text.slice(i, j) });
    i = j;
  }
  return out;
}

/** Parses a Kconfig expression; malformed input is KERNEL_CONFIG, located at `at` when given. */
export function parseExpr(text: string, at?: Location): Expr {
  const toks = tokenize(text);
  let p = 0;
  const peek = () => toks[p];
  const fail = (why: string): never => {
    throw kconfigError(`cannot parse Kconfig expression ${JSON.stringify(text)}: ${why}`, at);
  };
  if (toks.length > MAX_EXPR_TOKENS) fail(`more than ${MAX_EXPR_TOKENS} tokens`);
  const primary = (): Expr => {
    const t = toks[p++];
    if (!t) return fail('unexpected end');
    if (t.t === 'op' && t.v === '!') return { k: 'not', e: primary() };
    if (t.t === 'op' && t.v === '(') {
      const e = or();
      const close = toks[p++];
      if (!close || close.v !== ')') fail('missing )');
      return e;
    }
    let left: Expr;
    if (t.t === 'str') left = { k: 'const', value: t.v };
    else if (t.t === 'macro') left = { k: 'macro', text: t.v };
    else if (t.t === 'word') left = /^(y|m|n|-?\d+|0x[0-9a-fA-F]+)$/.test(t.v) ? { k: 'const', value: t.v } : { k: 'sym', name: t.v };
    else return fail(`unexpected ${t.v}`);
    const op = peek();
    if (op && op.t === 'op' && ['=', '!=', '<', '<=', '>', '>='].includes(op.v)) {
      p++;
      const rt = toks[p++];
      if (!rt || rt.t === 'op') fail(`missing operand after ${op.v}`);
      const right: Expr =
        rt!.t === 'str'
          ? { k: 'const', value: rt!.v }
          : rt!.t === 'macro'
            ? { k: 'macro', text: rt!.v }
            : /^(y|m|n|-?\d+|0x[0-9a-fA-F]+)$/.test(rt!.v)
              ? { k: 'const', value: rt!.v }
              : { k: 'sym', name: rt!.v };
      return { k: 'cmp', op: op.v as '=', a: left, b: right };
    }
    return left;
  };
  const and = (): Expr => {
    let e = primary();
    while (peek()?.v === '&&') {
      p++;
      e = { k: 'and', a: e, b: primary() };
    }
    return e;
  };
  const or = (): Expr => {
    let e = and();
    while (peek()?.v === '||') {
      p++;
      e = { k: 'or', a: e, b: and() };
    }
    return e;
  };
  const e = or();
  if (p !== toks.length) fail(`unexpected ${toks[p]!.v}`);
  return e;
}

export function formatExpr(e: Expr, parent = 0): string {
  switch (e.k) {
    case 'sym':
      return e.name;
    case 'const':
      return /^[\w-]+$/.test(e.value) ? e.value : JSON.stringify(e.value);
    case 'macro':
      return e.text;
    case 'not':
      return `!${formatExpr(e.e, 3)}`;
    case 'cmp':
      return `${formatExpr(e.a, 3)}${e.op}${formatExpr(e.b, 3)}`;
    case 'and': {
      const s = `${formatExpr(e.a, 2)} && ${formatExpr(e.b, 2)}`;
      return parent > 2 ? `(${s})` : s;
    }
    case 'or': {
      const s = `${formatExpr(e.a, 1)} || ${formatExpr(e.b, 1)}`;
      return parent > 1 ? `(${s})` : s;
    }
  }
}

/** Symbols named in an expression. */
export function exprSymbols(e: Expr, out: Set<string> = new Set()): Set<string> {
  switch (e.k) {
    case 'sym':
      out.add(e.name);
      break;
    case 'not':
      exprSymbols(e.e, out);
      break;
    case 'and':
    case 'or':
    case 'cmp':
      exprSymbols(e.a, out);
      exprSymbols(e.b, out);
      break;
    default:
      break;
  }
  return out;
}

/** Top-level `&&` operands: each is reported as its own dependency. */
export function conjuncts(e: Expr): Expr[] {
  return e.k === 'and' ? [...conjuncts(e.a), ...conjuncts(e.b)] : [e];
}

/** A final .config as symbol (without CONFIG_) -> raw value ('y', 'm', '"str"' unquoted, numbers). */
export type ConfigValues = Map<string, string>;

export type Tristate = 0 | 1 | 2;

function tri(v: string | undefined): Tristate {
  return v === 'y' ? 2 : v === 'm' ? 1 : 0;
}

function operandValue(e: Expr, cfg: ConfigValues): string {
  if (e.k === 'sym') return cfg.get(e.name) ?? 'n';
  if (e.k === 'const') return e.value;
  if (e.k === 'macro') return 'y';
  return ['n', 'm', 'y'][evalExpr(e, cfg)]!;
}

function numeric(s: string): number | undefined {
  if (/^-?\d+$/.test(s)) return Number(s);
  if (/^0x[0-9a-f]+$/i.test(s)) return Number.parseInt(s.slice(2), 16);
  return undefined;
}

/**
 * Evaluates with Kconfig's tristate rules. Symbols absent from the config are n.
 * $(…) macros (toolchain tests) are taken as y: Kconfig already expanded them.
 */
export function evalExpr(e: Expr, cfg: ConfigValues): Tristate {
  switch (e.k) {
    case 'sym':
      return tri(cfg.get(e.name));
    case 'const':
      return tri(e.value);
    case 'macro':
      return 2;
    case 'not':
      return (2 - evalExpr(e.e, cfg)) as Tristate;
    case 'and':
      return Math.min(evalExpr(e.a, cfg), evalExpr(e.b, cfg)) as Tristate;
    case 'or':
      return Math.max(evalExpr(e.a, cfg), evalExpr(e.b, cfg)) as Tristate;
    case 'cmp': {
      const a = operandValue(e.a, cfg);
      const b = operandValue(e.b, cfg);
      const na = numeric(a);
      const nb = numeric(b);
      const c = na !== undefined && nb !== undefined ? Math.sign(na - nb) : a === b ? 0 : a < b ? -1 : 1;
      const ok = { '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[e.op];
      return ok ? 2 : 0;
    }
  }
}

// ------------------------------------------------------------------- parsing

interface Block {
  kind: 'if' | 'menu' | 'choice';
  deps: Dependency[];
  visibleIf: Dependency[];
  loc: Location;
  /** Menu title, for `menu` and for the `if X` right after `menuconfig X`. */
  title?: string;
}

const ATTR_RE =
  /^(bool|tristate|string|int|hex|def_bool|def_tristate|prompt|default|depends\s+on|select|imply|range|visible\s+if|option|modules|optional|transitional)\b\s*(.*)$/s;

function indentWidth(line: string): number {
  let w = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 32) w++;
    else if (c === 9) w = (Math.floor(w / 8) + 1) * 8;
    else break;
  }
  return w;
}

function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

/** Strips a trailing `# comment` that is outside quotes. */
function stripComment(line: string): string {
  let q: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '\\') i++;
      else if (c === q) q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (c === '#') return line.slice(0, i);
  }
  return line;
}

/** Splits `"prompt text" if cond` / `value if cond`. */
function splitIf(rest: string, at: Location): { head: string; cond?: Expr } {
  const toks = tokenize(rest);
  const idx = toks.findIndex((t) => t.t === 'word' && t.v === 'if');
  if (idx < 0) return { head: rest.trim() };
  // Rebuild the head from the raw text up to the ` if ` keyword outside quotes.
  let q: string | undefined;
  let depth = 0;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!;
    if (q) {
      if (c === '\\') i++;
      else if (c === q) q = undefined;
      continue;
    }
    if (c === '"' || c === "'") q = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && /\s/.test(c) && rest.slice(i + 1, i + 3) === 'if' && /\s/.test(rest[i + 3] ?? '')) {
      return { head: rest.slice(0, i).trim(), cond: parseExpr(rest.slice(i + 3), at) };
    }
  }
  return { head: rest.trim() };
}

function unquote(s: string): string {
  const t = s.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
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
  const tree: KconfigTree = { srctree, srcarch: opts.srcarch, symbols: new Map(), reverse: new Map(), files: 0 };
  const stack: Block[] = [];
  const seen = new Set<string>();

  const subst = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => vars[v] ?? m);

  // Block conditions change only at block boundaries and menu/choice attributes:
  // flatten once per change, share the result between the entries inside.
  let cachedInherited: { deps: Dependency[]; visibleIf: Dependency[]; menus: string[] } | undefined;
  const inherited = (): { deps: Dependency[]; visibleIf: Dependency[]; menus: string[] } =>
    (cachedInherited ??= {
      deps: stack.flatMap((b) => b.deps),
      visibleIf: stack.flatMap((b) => b.visibleIf),
      menus: stack.flatMap((b) => (b.title ? [b.title] : [])),
    });
  const blocksChanged = () => {
    cachedInherited = undefined;
  };

  const parseFile = (rel: string, optional: boolean, from?: Location) => {
    const abs = join(srctree, rel);
    if (seen.has(abs)) return;
    let content: string;
    try {
      content = readFileSync(abs, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const missing = code === 'ENOENT' || code === 'ENOTDIR';
      if (optional && missing) return;
      throw kconfigError(
        `${from ? 'sourced ' : ''}Kconfig file ${rel} ${missing ? `does not exist in ${srctree}` : `cannot be read: ${(err as Error).message}`}`,
        from,
      );
    }
    seen.add(abs);
    tree.files++;
    const raw = content.split('\n');
    let cur: SymbolDef | undefined;
    let curBlock: Block | undefined; // the menu/choice whose attributes we are reading
    let lastMenuconfig: SymbolDef | undefined; // an `if` on it right after its entry is a menu in menuconfig's UI
    let choiceLoc: Location | undefined;
    const choiceStack: Array<Location | undefined> = [];
    let i = 0;
    while (i < raw.length) {
      const lineNo = i + 1;
      let line = raw[i]!;
      i++;
      while (line.endsWith('\\') && i < raw.length) line = `${line.slice(0, -1)} ${raw[i++]!}`;
      const text = stripComment(line).trim();
      if (!text) continue;
      const loc = { file: rel, line: lineNo };
      const kw = /^(\S+)\s*(.*)$/s.exec(text)!;
      const word = kw[1]!;
      const rest = kw[2]!;

      if (word === 'help' || word === '---help---') {
        // Help text: lines indented deeper than the first help line, or blank.
        let helpIndent = -1;
        while (i < raw.length) {
          const l = raw[i]!;
          if (isBlank(l)) {
            i++;
            continue;
          }
          const w = indentWidth(l);
          if (helpIndent < 0) {
            if (w === 0) break;
            helpIndent = w;
          }
          if (w < helpIndent) break;
          i++;
        }
        continue;
      }
      if (word === 'config' || word === 'menuconfig') {
        const name = rest.trim();
        const inh = inherited();
        cur = {
          name,
          file: rel,
          line: lineNo,
          prompts: [],
          deps: [...inh.deps],
          visibleIf: inh.visibleIf,
          defaults: [],
          selects: [],
          implies: [],
          ranges: [],
          menus: inh.menus,
        };
        if (choiceLoc) cur.choice = choiceLoc;
        lastMenuconfig = word === 'menuconfig' ? cur : undefined;
        const list = tree.symbols.get(name) ?? [];
        list.push(cur);
        tree.symbols.set(name, list);
        curBlock = undefined;
        continue;
      }
      if (word === 'choice') {
        cur = undefined;
        const block: Block = { kind: 'choice', deps: [], visibleIf: [], loc };
        stack.push(block);
        blocksChanged();
        curBlock = block;
        choiceStack.push(choiceLoc);
        choiceLoc = loc;
        continue;
      }
      if (word === 'endchoice') {
        cur = undefined;
        popBlock('choice', loc);
        choiceLoc = choiceStack.pop();
        curBlock = undefined;
        continue;
      }
      if (word === 'menu') {
        cur = undefined;
        const block: Block = { kind: 'menu', deps: [], visibleIf: [], loc, title: unquote(subst(rest)) };
        stack.push(block);
        blocksChanged();
        curBlock = block;
        continue;
      }
      if (word === 'endmenu') {
        cur = undefined;
        popBlock('menu', loc);
        curBlock = undefined;
        continue;
      }
      if (word === 'if') {
        const title = cur && cur === lastMenuconfig && cur.name === rest.trim() ? cur.prompts[0]?.text : undefined;
        cur = undefined;
        stack.push({ kind: 'if', deps: [{ origin: 'if', expr: parseExpr(subst(rest), loc), ...loc }], visibleIf: [], loc, ...(title ? { title } : {}) });
        blocksChanged();
        curBlock = undefined;
        continue;
      }
      if (word === 'endif') {
        cur = undefined;
        popBlock('if', loc);
        curBlock = undefined;
        continue;
      }
      if (word === 'comment' || word === 'mainmenu') {
        cur = undefined;
        curBlock = undefined; // a comment's own depends on are not symbol dependencies
        continue;
      }
      if (['source', 'rsource', 'osource', 'orsource'].includes(word)) {
        cur = undefined;
        curBlock = undefined;
        const target = subst(unquote(rest));
        const relTarget = word.startsWith('r') || word.startsWith('or') ? join(dirname(rel), target) : target;
        parseFile(normalize(relTarget), word.startsWith('o'), loc);
        continue;
      }
      const attr = ATTR_RE.exec(text);
      if (attr) {
        const name = attr[1]!.replace(/\s+/g, ' ');
        const arg = subst(attr[2]!);
        if (curBlock && !cur) {
          // menu/choice attributes
          if (name === 'depends on') curBlock.deps.push({ origin: curBlock.kind === 'menu' ? 'menu' : 'choice', expr: parseExpr(arg, loc), ...loc });
          else if (name === 'visible if') curBlock.visibleIf.push({ origin: 'menu', expr: parseExpr(arg, loc), ...loc });
          blocksChanged();
          continue;
        }
        if (!cur) continue; // attributes of a comment block
        switch (name) {
          case 'bool':
          case 'tristate':
          case 'string':
          case 'int':
          case 'hex': {
            cur.type = name;
            if (arg.trim()) {
              const { head, cond } = splitIf(arg, loc);
              cur.prompts.push({ text: unquote(head), cond, ...loc });
            }
            break;
          }
          case 'def_bool':
          case 'def_tristate': {
            cur.type = name === 'def_bool' ? 'bool' : 'tristate';
            const { head, cond } = splitIf(arg, loc);
            cur.defaults.push({ value: parseExpr(head, loc), cond, ...loc });
            break;
          }
          case 'prompt': {
            const { head, cond } = splitIf(arg, loc);
            cur.prompts.push({ text: unquote(head), cond, ...loc });
            break;
          }
          case 'default': {
            const { head, cond } = splitIf(arg, loc);
            cur.defaults.push({ value: parseExpr(head, loc), cond, ...loc });
            break;
          }
          case 'depends on':
            cur.deps.push({ origin: 'depends on', expr: parseExpr(arg, loc), ...loc });
            break;
          case 'select':
          case 'imply': {
            const { head, cond } = splitIf(arg, loc);
            const target = head.trim();
            (name === 'select' ? cur.selects : cur.implies).push({ target, cond, ...loc });
            const rev = tree.reverse.get(target) ?? [];
            rev.push({ by: cur.name, kind: name, cond, ...loc });
            tree.reverse.set(target, rev);
            break;
          }
          case 'range': {
            const { head, cond } = splitIf(arg, loc);
            const parts = tokenize(head);
            if (parts.length >= 2) {
              const toExpr = (t: Tok): Expr => (t.t === 'word' && !/^(-?\d+|0x[0-9a-fA-F]+)$/.test(t.v) ? { k: 'sym', name: t.v } : { k: 'const', value: t.v });
              cur.ranges.push({ min: toExpr(parts[0]!), max: toExpr(parts[1]!), cond, ...loc });
            }
            break;
          }
          default:
            break; // option, modules, optional, transitional
        }
        continue;
      }
      if (/^[A-Za-z_][\w-]*\s*(:=|\+=|=)/.test(text)) continue; // macro assignment
      // Anything else ends the current entry (unknown keyword): keep reading.
    }
  };

  const popBlock = (kind: Block['kind'], loc: Location) => {
    blocksChanged();
    const top = stack.pop();
    if (!top || top.kind !== kind) throw kconfigError(`end${kind} without matching ${kind}`, loc);
  };

  parseFile(opts.root ?? 'Kconfig', false);
  return tree;
}
