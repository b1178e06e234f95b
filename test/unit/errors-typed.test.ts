/**
 * Every error osbuilder throws is an OsbuilderError with a stable code and a
 * hint: outside core/errors.ts no source constructs a plain Error (thrown,
 * rejected with or passed on), and no OsbuilderError or run() is given an
 * empty hint.
 * Sources are parsed (TypeScript's parser), so a call split over lines counts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Not osbuilder's sources: tests, builds, generated protocol code, benchmarks (scripts of their own). */
const SKIP = new Set(['test', 'node_modules', 'dist', 'runtime/gen', 'bench']);
/** The one module that defines the typed error (and the errno-shaped one SafeRoot throws). */
const ERROR_MODULE = 'core/errors.ts';
const PLAIN = new Set(['Error', 'RangeError', 'TypeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError']);

function sourceFiles(dir = ''): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (SKIP.has(rel) || e.name.startsWith('.')) return [];
    if (e.isDirectory()) return sourceFiles(rel);
    return e.isFile() && /\.[cm]?ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

const isEmptyString = (n: ts.Expression): boolean => (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) && n.text === '';

/** What is wrong with one file's errors, as `file:line: problem`. */
export function errorProblems(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const at = (n: ts.Node, why: string) =>
    out.push(`${file}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}: ${why}: ${n.getText(sf).slice(0, 100)}`);
  const visit = (n: ts.Node): void => {
    if ((ts.isNewExpression(n) || ts.isCallExpression(n)) && ts.isIdentifier(n.expression)) {
      const name = n.expression.text;
      if (PLAIN.has(name) && file !== ERROR_MODULE) at(n, `plain ${name}`);
      if (name === 'OsbuilderError') {
        const hint = n.arguments?.[2];
        if (!hint) at(n, 'OsbuilderError without a hint');
        else if (
          isEmptyString(hint) ||
          (ts.isBinaryExpression(hint) && hint.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken && isEmptyString(hint.right))
        )
          at(n, 'OsbuilderError with an empty hint');
      }
    }
    if (ts.isPropertyAssignment(n) && ts.isIdentifier(n.name) && n.name.text === 'hint' && isEmptyString(n.initializer)) at(n, 'an empty hint');
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe('typed errors', () => {
  it('the check catches each untyped form and spares the typed ones', () => {
    const bad = [
      "throw new Error('x');",
      'throw Error(`x`);',
      'reject(new Error("x"));',
      'if (a) throw  new RangeError (msg);',
      "parser.abort(new Error('interrupted'));",
      "const e = new TypeError('t'); throw e;",
      "throw new OsbuilderError('INTERNAL', 'x');",
      "throw new OsbuilderError('USAGE', 'x', '');",
      "throw new OsbuilderError('COMMAND_FAILED', 'x', hint ?? '');",
      "throw new OsbuilderError(\n  'USAGE',\n  `x`,\n);",
      "await run('umount', [m], { hint: '' });",
    ];
    for (const b of bad) expect(errorProblems('cli/x.ts', b), b).toHaveLength(1);
    const ok = [
      "throw new OsbuilderError('INTERNAL', 'x', 'h');",
      'throw internalError(`x`);',
      'reject(err);',
      'throw new CpioFormatError(m);',
      "throw new OsbuilderError('COMMAND_FAILED', 'x', hint ?? RERUN_HINT);",
      'if (e instanceof Error) log(e.message);',
    ];
    for (const o of ok) expect(errorProblems('cli/x.ts', o), o).toEqual([]);
    expect(errorProblems(ERROR_MODULE, "const e = new Error('x');")).toEqual([]);
  });

  it('no source constructs a plain Error or an OsbuilderError without a hint', () => {
    const files = sourceFiles();
    for (const f of ['pipeline/dag.ts', 'cli/index.ts', 'core/fs-safe.ts', 'runtime/boot.ts', 'kernel/source.ts']) expect(files).toContain(f);
    expect(files.some((f) => f.startsWith('runtime/gen/') || f.startsWith('test/'))).toBe(false);
    expect(files.flatMap((f) => errorProblems(f, readFileSync(join(ROOT, f), 'utf8')))).toEqual([]);
  });
});
