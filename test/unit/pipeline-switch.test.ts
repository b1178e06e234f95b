import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstDifference, switchTrees, treeDigest } from '../../pipeline/switch.js';

async function tree(root: string, files: Record<string, string>, links: Record<string, string> = {}): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [p, c] of Object.entries(files)) await writeFile(join(root, p), c);
  for (const [p, t] of Object.entries(links)) await symlink(t, join(root, p));
  return root;
}

describe('switchTrees', () => {
  it('installs, reports unchanged for identical content, refuses a different tree without force', async () => {
    const d = await mkdtemp(join(tmpdir(), 'osb-switch-'));
    const dest = join(d, 'usr/share/kata-containers');
    const s1 = await tree(join(d, 's1'), { 'a.image': 'A' }, { 'kata-containers.img': 'a.image' });
    expect(await switchTrees([{ staged: s1, dest }], false)).toBe('installed');
    expect(await readFile(join(dest, 'kata-containers.img'), 'utf8')).toBe('A');

    const s2 = await tree(join(d, 's2'), { 'a.image': 'A' }, { 'kata-containers.img': 'a.image' });
    expect(await switchTrees([{ staged: s2, dest }], false)).toBe('unchanged');

    const s3 = await tree(join(d, 's3'), { 'a.image': 'B' }, { 'kata-containers.img': 'a.image' });
    await expect(switchTrees([{ staged: s3, dest }], false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(await readFile(join(dest, 'a.image'), 'utf8')).toBe('A');

    expect(await switchTrees([{ staged: s3, dest }], true)).toBe('replaced');
    expect(await readFile(join(dest, 'a.image'), 'utf8')).toBe('B');
    // Staged trees are consumed: only the install remains.
    expect(await readdir(d)).toEqual(['usr']);
  });

  it('names the first differing path', async () => {
    const d = await mkdtemp(join(tmpdir(), 'osb-switch-'));
    const a = await treeDigest(await tree(join(d, 'a'), { x: '1', y: '2' }));
    const b = await treeDigest(await tree(join(d, 'b'), { x: '1', y: '3' }));
    expect(firstDifference(a, b)).toBe('y');
    expect(firstDifference(a, a)).toBeUndefined();
  });
});
