/**
 * Kconfig's lexical layer: a file's statements (continued lines joined, `# comments`
 * and help text dropped) and the pieces of an attribute's argument.
 */
import { parseExpr, tokenize, type Expr, type Location } from './kconfig-expr.js';

/** One logical line: its first word and the rest. */
export interface Statement {
  loc: Location;
  text: string;
  word: string;
  rest: string;
}

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

/** Index of the first line after the help text starting at `i`: lines indented deeper than its first line, or blank. */
function helpEnd(raw: string[], start: number): number {
  let i = start;
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
  return i;
}

/** The statements of one Kconfig file, in order. */
export function* statements(content: string, file: string): Generator<Statement> {
  const raw = content.split('\n');
  let i = 0;
  while (i < raw.length) {
    const line = i + 1;
    let joined = raw[i]!;
    i++;
    while (joined.endsWith('\\') && i < raw.length) joined = `${joined.slice(0, -1)} ${raw[i++]!}`;
    const text = stripComment(joined).trim();
    if (!text) continue;
    const kw = /^(\S+)\s*(.*)$/s.exec(text)!;
    const word = kw[1]!;
    if (word === 'help' || word === '---help---') i = helpEnd(raw, i);
    else yield { loc: { file, line }, text, word, rest: kw[2]! };
  }
}

/** Splits `"prompt text" if cond` / `value if cond`. */
export function splitIf(rest: string, at: Location): { head: string; cond?: Expr } {
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

export function unquote(s: string): string {
  const t = s.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}
