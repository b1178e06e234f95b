/**
 * The structure ARCHITECTURE.md describes, kept true: no function longer than
 * a screen (scripts/function-lengths.mjs), and imports that point one way
 * (cli → pipeline → stages → core) with a stage reached only through its
 * index.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { longFunctions, MAX_LINES } from '../../scripts/function-lengths.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STAGES = ['distros', 'rootfs-builder', 'image-builder', 'initrd-builder', 'kernel', 'agent', 'runtime'];
/** Which top-level folders each one may import; core's modules are imported one by one, the others through index.ts. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  ...Object.fromEntries(STAGES.map((s) => [s, ['core', ...STAGES]])),
  pipeline: ['core', ...STAGES],
  cli: ['core', 'pipeline', ...STAGES],
};

/** What is wrong with one source's imports, as `file: problem`. */
export function importProblems(file: string, text: string): string[] {
  const from = file.split('/')[0]!;
  const allowed = MAY_IMPORT[from];
  if (!allowed) return [];
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (!(ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) || !st.moduleSpecifier || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    const spec = st.moduleSpecifier.text;
    if (!spec.startsWith('.')) continue;
    const target = posix.normalize(posix.join(posix.dirname(file), spec));
    const to = target.split('/')[0]!;
    if (to === from) continue;
    if (!allowed.includes(to)) out.push(`${file}: ${from}/ may not import ${to}/ (${spec})`);
    else if (to !== 'core' && target !== `${to}/index.js`) out.push(`${file}: reaches into ${to}/ past its index.ts (${spec})`);
  }
  return out;
}

function sources(): string[] {
  const out = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' });
  return out.split('\n').filter((f) => f && !f.startsWith('test/') && !f.includes('/gen/') && !f.endsWith('.d.ts'));
}

describe('imports point one way, and into a stage only through its index.ts', () => {
  it('holds for every source', () => {
    expect(sources().flatMap((f) => importProblems(f, readFileSync(`${ROOT}/${f}`, 'utf8')))).toEqual([]);
  });

  it('catches a stage reaching into another, core importing a stage, a stage importing the CLI', () => {
    expect(importProblems('rootfs-builder/x.ts', "import { a } from '../kernel/build.js';")).toEqual([
      'rootfs-builder/x.ts: reaches into kernel/ past its index.ts (../kernel/build.js)',
    ]);
    expect(importProblems('core/x.ts', "import { a } from '../kernel/index.js';")).toEqual(['core/x.ts: core/ may not import kernel/ (../kernel/index.js)']);
    expect(importProblems('kernel/x.ts', "export { a } from '../cli/output.js';")).toEqual(['kernel/x.ts: kernel/ may not import cli/ (../cli/output.js)']);
    expect(importProblems('cli/commands/x.ts', "import type { A } from '../../pipeline/plan.js';")).toHaveLength(1);
  });

  it('lets a folder import itself, core module by module, and a stage through its index', () => {
    const ok = [
      "import { a } from './b.js';",
      "import { OsbuilderError } from '../core/errors.js';",
      "import { buildImage } from '../image-builder/index.js';",
    ];
    expect(importProblems('pipeline/x.ts', ok.join('\n'))).toEqual([]);
    expect(importProblems('cli/commands/x.ts', "import { build } from '../../pipeline/index.js';\nimport { run } from '../output.js';")).toEqual([]);
  });
});

describe(`one screen per function (${MAX_LINES} lines)`, () => {
  it('no function in the sources is longer', () => {
    expect(longFunctions(ROOT).map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`)).toEqual([]);
  });
});
