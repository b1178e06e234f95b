import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile, readdir, truncate, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache, cacheKey, canonicalJson } from '../../core/cache.js';

async function cache(): Promise<BuildCache> {
  return new BuildCache(await mkdtemp(join(tmpdir(), 'osb-cache-')));
}

describe('cacheKey', () => {
  it('ignores key order and undefined, and changes with any input', () => {
    expect(canonicalJson({ b: 1, a: [1, 'x'], c: undefined })).toBe('{"a":[1,"x"],"b":1}');
    expect(cacheKey({ a: '1', b: '2' })).toBe(cacheKey({ b: '2', a: '1' }));
    expect(cacheKey({ a: '1', b: '2' })).not.toBe(cacheKey({ a: '1', b: '3' }));
    expect(cacheKey({ n: { x: 1 } })).not.toBe(cacheKey({ n: { x: 2 } }));
  });
});

describe('BuildCache', () => {
  it('stores, finds and verifies an entry', async () => {
    const c = await cache();
    expect(await c.lookup('image', 'k1')).toBeUndefined();
    let builds = 0;
    await c.store('image', 'k1', { distro: 'debian' }, async (dir) => {
      builds++;
      await writeFile(join(dir, 'a.img'), 'image bytes');
      return { note: 'built' };
    });
    const hit = await c.lookup<{ note: string }>('image', 'k1');
    expect(hit?.meta.note).toBe('built');
    expect(hit?.files['a.img']?.size).toBe(11);
    expect(builds).toBe(1);
  });

  it('discards an entry whose file was corrupted or truncated', async () => {
    const c = await cache();
    const e = await c.store('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await writeFile(join(e.dir, 'x'), 'abcdeF');
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
    expect(await readdir(join(c.root, 'initrd'))).toEqual([]);
    const e2 = await c.store('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await truncate(join(e2.dir, 'x'), 2);
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
    const e3 = await c.store('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await rm(join(e3.dir, 'entry.json'));
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
  });

  it('leaves no entry when produce fails', async () => {
    const c = await cache();
    await expect(c.store('kernel', 'k', {}, async () => { throw new Error('build failed'); })).rejects.toThrow('build failed');
    expect(await c.lookup('kernel', 'k')).toBeUndefined();
    expect(await readdir(join(c.root, 'kernel'))).toEqual([]);
  });

  it('prunes to the newest N per stage', async () => {
    const c = await cache();
    for (const k of ['a', 'b', 'c']) await c.store('image', k, {}, async (dir) => writeFile(join(dir, 'f'), k));
    await c.store('initrd', 'z', {}, async (dir) => writeFile(join(dir, 'f'), 'z'));
    await c.lookup('image', 'a'); // most recently used now
    const r = await c.prune(1);
    expect(r.removed).toHaveLength(2);
    const left = (await c.list()).map((e) => `${e.stage}/${e.key}`).sort();
    expect(left).toEqual(['image/a', 'initrd/z']);
  });
});
