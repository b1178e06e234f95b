/**
 * Memos in the cache: a file's sha256 kept under its stamp, values kept while
 * the files they derive from keep theirs; `which` finds a command on $PATH
 * without a shell. A changed file (even with size and mtime restored) is hashed
 * again; a file changed too recently to trust its stamp is not remembered.
 */
import { describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoByFiles, memoSha256 } from '../../core/memo.js';
import { sha256 } from '../../core/hash.js';
import { which } from '../../core/exec.js';

async function fixture(): Promise<{ root: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'osb-memo-'));
  const file = join(dir, 'data.bin');
  await writeFile(file, 'first content');
  return { root: join(dir, 'cache'), file };
}

/** A stamp is trusted once its ctime is 2 s old: wait that out. */
const settle = () => new Promise((r) => setTimeout(r, 2100));

describe('memoSha256', () => {
  it('hashes once a file has settled, then answers from the memo until the stamp changes, even with size and mtime restored', async () => {
    const { root, file } = await fixture();
    // Fresh: correct, but not remembered (the stamp could still change within this clock tick).
    expect(await memoSha256(file, root)).toBe(sha256('first content'));
    expect(await readdir(join(root, 'memo')).catch(() => [])).toEqual([]);
    await settle();
    expect(await memoSha256(file, root)).toBe(sha256('first content'));
    const memos = await readdir(join(root, 'memo'));
    expect(memos).toEqual([expect.stringMatching(/^sha256-[0-9a-f]{64}\.json$/)]);
    // The memo answers: prove it by making it lie, with the stamp intact.
    const memoFile = join(root, 'memo', memos[0]!);
    const memo = JSON.parse(await readFile(memoFile, 'utf8')) as { stamp: string; sha256: string };
    await writeFile(memoFile, JSON.stringify({ ...memo, sha256: 'remembered' }));
    expect(await memoSha256(file, root)).toBe('remembered');
    // Same size, mtime put back: ctime moved, so it is hashed again.
    const st = await stat(file);
    await writeFile(file, 'other content');
    await utimes(file, st.atime, st.mtime);
    expect(await memoSha256(file, root)).toBe(sha256('other content'));
  });
});

describe('memoByFiles', () => {
  it('computes again when a basis file changes, appears or disappears', async () => {
    const { root, file } = await fixture();
    const missing = join(root, '..', 'not-yet');
    let calls = 0;
    const get = () => memoByFiles('t', 'key', [file, missing], async () => ++calls, root);
    await settle();
    expect(await get()).toBe(1);
    expect(await get()).toBe(1);
    await writeFile(missing, 'x');
    expect(await get()).toBe(2);
    await settle();
    expect(await get()).toBe(3);
    expect(await get()).toBe(3);
    await chmod(file, 0o600); // ctime moves
    expect(await get()).toBe(4);
    expect(await memoByFiles('t', 'other key', [file], async () => 'other', root)).toBe('other');
  }, 15_000);
});

describe('which', () => {
  it('finds executables on $PATH as command -v does, and not plain files or directories', async () => {
    const { file } = await fixture();
    const dir = join(file, '..');
    await writeFile(join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(dir, 'plain'), 'x', { mode: 0o644 });
    expect(await which('tool', `/nonexistent:${dir}`)).toBe(join(dir, 'tool'));
    expect(await which('plain', dir)).toBeUndefined();
    expect(await which('cache', dir)).toBeUndefined();
    expect(await which('sh')).toMatch(/\/sh$/);
    expect(await which(join(dir, 'tool'), '')).toBe(join(dir, 'tool'));
    expect(await which('osbuilder-no-such-tool')).toBeUndefined();
  });
});
