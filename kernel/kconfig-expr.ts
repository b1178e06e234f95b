/**
 * Kconfig expressions: the tokenizer, the parser (! over && over ||, comparisons,
 * strings, $(…) macros kept opaque), printing and the symbols they name.
 */
import { OsbuilderError } from '../core/errors.js';

export type Expr =
  | { k: 'sym'; name: string }
  | { k: 'const'; value: string }
  | { k: 'macro'; text: string }
  | { k: 'not'; e: Expr }
  | { k: 'and'; a: Expr; b: Expr }
  | { k: 'or'; a: Expr; b: Expr }
  | { k: 'cmp'; op: '=' | '!=' | '<' | '<=' | '>' | '>='; a: Expr; b: Expr };

export interface Location {
  file: string;
  line: number;
}

export function kconfigError(message: string, at?: Location): OsbuilderError {
  return new OsbuilderError('KERNEL_CONFIG', at ? `Kconfig ${at.file}:${at.line}: ${message}` : message, 'is this a complete, unmodified kernel source tree?');
}

/** Far above any kernel's longest expression (59 tokens in 6.1); bounds the parser's recursion. */
const MAX_EXPR_TOKENS = 1000;

export type Tok = { t: 'word' | 'str' | 'op' | 'macro'; v: string };

/** Index just past the `)` closing the `$(` at `i`. */
function macroEnd(text: string, i: number): number {
  let depth = 0;
  let j = i + 1;
  for (; j < text.length; j++) {
    if (text[j] === '(') depth++;
    else if (text[j] === ')' && --depth === 0) break;
  }
  return j + 1;
}

/** The quoted string opening at `i`, unescaped, and the index past its closing quote. */
function quoted(text: string, i: number): { s: string; end: number } {
  const q = text[i];
  let j = i + 1;
  let s = '';
  while (j < text.length && text[j] !== q) {
    if (text[j] === '\\' && j + 1 < text.length) j++;
    s += text[j];
    j++;
  }
  return { s, end: j + 1 };
}

export function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '$' && text[i + 1] === '(') {
      const end = macroEnd(text, i);
      out.push({ t: 'macro', v: text.slice(i, end) });
      i = end;
    } else if (c === '"' || c === "'") {
      const { s, end } = quoted(text, i);
      out.push({ t: 'str', v: s });
      i = end;
    } else if (['&&', '||', '!=', '<=', '>='].includes(text.slice(i, i + 2))) {
      out.push({ t: 'op', v: text.slice(i, i + 2) });
      i += 2;
    } else if ('!()=<>'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
    } else {
      let j = i;
      while (j < text.length && !/[\s!()=<>&|"']/.test(text[j]!)) j++;
      if (j === i) j = i + 1; // stray character: keep going
      out.push({ t: 'word', v: text.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** A non-operator token as an operand: strings and y/m/n/numbers are constants, other words symbols. */
function operand(t: Tok): Expr {
  if (t.t === 'str') return { k: 'const', value: t.v };
  if (t.t === 'macro') return { k: 'macro', text: t.v };
  return /^(y|m|n|-?\d+|0x[0-9a-fA-F]+)$/.test(t.v) ? { k: 'const', value: t.v } : { k: 'sym', name: t.v };
}

const COMPARISONS = ['=', '!=', '<', '<=', '>', '>='];

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
    if (t.t === 'op') return fail(`unexpected ${t.v}`);
    const left = operand(t);
    const op = peek();
    if (!op || op.t !== 'op' || !COMPARISONS.includes(op.v)) return left;
    p++;
    const rt = toks[p++];
    if (!rt || rt.t === 'op') return fail(`missing operand after ${op.v}`);
    return { k: 'cmp', op: op.v as '=', a: left, b: operand(rt) };
  };
  // A left-associative chain of `next` joined by `op` (|| binds looser than &&).
  const chain = (op: '&&' | '||', k: 'and' | 'or', next: () => Expr) => (): Expr => {
    let e = next();
    while (peek()?.v === op) {
      p++;
      e = { k, a: e, b: next() };
    }
    return e;
  };
  const and = chain('&&', 'and', primary);
  const or = chain('||', 'or', and);
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
