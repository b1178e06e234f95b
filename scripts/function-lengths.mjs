#!/usr/bin/env node
// Lists the functions longer than a screen (default 60 lines) in the sources (not test/, not
// generated code): TypeScript and JavaScript parsed by TypeScript, the C agent by its layout
// (a definition's head at column 0, its braces alone at column 0). `node scripts/function-lengths.mjs [max]` exits 1 when any is found;
// test/unit/function-lengths.test.ts keeps the tree at that.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const MAX_LINES = 60;

function sources(root) {
  const out = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '*.ts', '*.mts', '*.mjs'], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => f && !f.startsWith('test/') && !f.includes('/gen/') && !f.endsWith('.d.ts') && !f.endsWith('.d.mts'));
}

function nameOf(node) {
  if (node.name) return node.name.getText();
  const p = node.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p))) return p.name.getText();
  return '<anonymous>';
}

/** The C agent's functions over `max` lines. */
function longCFunctions(root, max) {
  const out = execFileSync('git', ['ls-files', '-co', '--exclude-standard', 'agent/src/*.c'], { cwd: root, encoding: 'utf8' });
  const found = [];
  for (const file of out.split('\n').filter(Boolean)) {
    const lines = readFileSync(`${root}/${file}`, 'utf8').split('\n');
    let start = -1;
    lines.forEach((text, i) => {
      if (text === '{' && i > 0 && /^[A-Za-z_].*\)$/.test(lines[i - 1])) start = i - 1;
      else if (text === '}' && start >= 0) {
        const name = lines[start]
          .replace(/\(.*/, '')
          .split(/[\s*]+/)
          .pop();
        if (i - start + 1 > max) found.push({ file, line: start + 1, name, lines: i - start + 1 });
        start = -1;
      }
    });
  }
  return found;
}

/** Every function, method and arrow in `root`'s sources over `max` lines: { file, line, name, lines }. */
export function longFunctions(root, max = MAX_LINES) {
  const found = [];
  for (const file of sources(root)) {
    const src = ts.createSourceFile(file, readFileSync(`${root}/${file}`, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const first = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
        const last = src.getLineAndCharacterOfPosition(node.end).line;
        if (last - first + 1 > max) found.push({ file, line: first + 1, name: nameOf(node), lines: last - first + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(src);
  }
  return [...found, ...longCFunctions(root, max)].sort((a, b) => b.lines - a.lines);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const max = Number(process.argv[2] ?? MAX_LINES);
  const root = fileURLToPath(new URL('..', import.meta.url));
  const found = longFunctions(root, max);
  for (const f of found) console.log(`${String(f.lines).padStart(4)}  ${f.file}:${f.line}  ${f.name}`);
  console.log(`${found.length} function(s) over ${max} lines`);
  process.exit(found.length ? 1 : 0);
}
