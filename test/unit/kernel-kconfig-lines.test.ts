import { describe, expect, it } from 'vitest';
import { splitIf, statements, unquote } from '../../kernel/kconfig-lines.js';
import { formatExpr } from '../../kernel/kconfig-expr.js';

describe('Kconfig statements', () => {
  it('joins continued lines, drops comments, blank lines and help text, keeps line numbers', () => {
    const text = [
      'config A # trailing',
      '\tbool "a # not a comment" if B \\',
      '\t\t&& C',
      '\thelp',
      '\t  help text',
      '',
      '\t    deeper help',
      'config D',
      '---help---',
      'config E',
    ].join('\n');
    expect([...statements(text, 'K')].map((s) => `${s.loc.line}:${s.word}|${s.rest}`)).toEqual([
      '1:config|A',
      '2:bool|"a # not a comment" if B  \t\t&& C',
      '8:config|D',
      '10:config|E',
    ]);
  });

  it('splits `if` conditions outside quotes and parentheses, and unquotes', () => {
    const at = { file: 'K', line: 1 };
    const s = splitIf('"x if y" if A && (B || C)', at);
    expect(s.head).toBe('"x if y"');
    expect(formatExpr(s.cond!)).toBe('A && (B || C)');
    expect(() => splitIf('"x" if A &&', at)).toThrow(/Kconfig K:1: cannot parse/);
    expect(formatExpr(splitIf('y if A || B', at).cond!)).toBe('A || B');
    expect(splitIf('"plain"', at)).toEqual({ head: '"plain"' });
    expect(unquote(' "q" ')).toBe('q');
    expect(unquote("'q'")).toBe('q');
    expect(unquote('bare')).toBe('bare');
  });
});
