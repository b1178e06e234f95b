/**
 * Every error osbuilder throws is an OsbuilderError with a stable code and a
 * hint: no untyped `Error` is thrown or rejected with in the sources.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_DIRS = ['agent', 'cli', 'core', 'distros', 'image-builder', 'initrd-builder', 'kernel', 'pipeline', 'rootfs-builder', 'runtime'];
/** Generated protocol code and the one place that defines the typed error. */
const EXEMPT = new Set(['runtime/gen', 'core/errors.ts']);
const UNTYPED = /\bthrow\s+(?:new\s+)?Error\s*\(|\breject\(\s*new\s+Error\s*\(/;

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (EXEMPT.has(rel)) return [];
    if (e.isDirectory()) return tsFiles(rel);
    return e.isFile() && e.name.endsWith('.ts') ? [rel] : [];
  });
}

function untypedThrows(file: string): string[] {
  return readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .flatMap((line, i) => (UNTYPED.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
}

describe('typed errors', () => {
  it('the pattern catches each untyped form and spares the typed ones', () => {
    for (const bad of ["throw new Error('x')", 'throw Error(`x`)', 'reject(new Error("x"))', 'if (a) throw  new Error (msg);']) expect(bad).toMatch(UNTYPED);
    for (const ok of ["throw new OsbuilderError('INTERNAL', 'x')", 'throw internalError(`x`)', 'reject(err)', 'throw new CpioFormatError(m)']) expect(ok).not.toMatch(UNTYPED);
  });

  it('no source file throws or rejects with a plain Error', () => {
    const files = SOURCE_DIRS.flatMap(tsFiles);
    expect(files).toContain('pipeline/dag.ts');
    expect(files).not.toContain('runtime/gen/agent_pb.ts');
    expect(files.flatMap(untypedThrows)).toEqual([]);
  });
});
