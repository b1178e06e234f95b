import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, writeFile, readdir, truncate, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache, cacheKey, canonicalJson } from '../../core/cache.js';
import { ownerTag } from '../../core/owner.js';
import { fsClock, stampFile } from '../../core/stamp.js';
import { liveProcess } from '../support/owner.js';

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
    await c.obtain('image', 'k1', { distro: 'debian' }, async (dir) => {
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
    const { entry: e } = await c.obtain('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await writeFile(join(e.dir, 'x'), 'abcdeF');
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
    expect(await readdir(join(c.root, 'initrd'))).toEqual([]);
    const { entry: e2 } = await c.obtain('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await truncate(join(e2.dir, 'x'), 2);
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
    const { entry: e3 } = await c.obtain('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    await rm(join(e3.dir, 'entry.json'));
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
  });

  it('leaves no entry when produce fails', async () => {
    const c = await cache();
    await expect(
      c.obtain('kernel', 'k', {}, async () => {
        throw new Error('build failed');
      }),
    ).rejects.toThrow('build failed');
    expect(await c.lookup('kernel', 'k')).toBeUndefined();
    expect(await readdir(join(c.root, 'kernel'))).toEqual([]);
  });

  it('prunes to the newest N per stage', async () => {
    const c = await cache();
    for (const k of ['a', 'b', 'c']) await c.obtain('image', k, {}, async (dir) => writeFile(join(dir, 'f'), k));
    await c.obtain('initrd', 'z', {}, async (dir) => writeFile(join(dir, 'f'), 'z'));
    await c.lookup('image', 'a'); // most recently used now
    const r = await c.prune(1);
    expect(r.removed).toHaveLength(2);
    const left = (await c.list()).map((e) => `${e.stage}/${e.key}`).sort();
    expect(left).toEqual(['image/a', 'initrd/z']);
  });

  it('builds an entry once when several ask for it at the same time, and reuses it after', async () => {
    const c = await cache();
    let builds = 0;
    const ask = () =>
      c.obtain('image', 'k', {}, async (dir) => {
        builds++;
        await new Promise((r) => setTimeout(r, 100));
        await writeFile(join(dir, 'f'), 'bytes');
        return {};
      });
    const got = await Promise.all([ask(), ask(), ask()]);
    expect(builds).toBe(1);
    expect(got.map((g) => g.cached).sort()).toEqual([false, true, true]);
    expect(new Set(got.map((g) => g.entry.dir)).size).toBe(1);
    expect((await ask()).cached).toBe(true);
    expect(await readdir(join(c.root, 'locks'))).toEqual([]);
  });

  it('rebuilds without the cache into a new directory, replacing the entry only once no other process holds it', async () => {
    const c = await cache();
    const { entry } = await c.obtain('image', 'k', {}, async (dir) => writeFile(join(dir, 'f'), 'v1'));
    const user = await liveProcess();
    await mkdir(join(c.root, 'holds'), { recursive: true });
    await writeFile(join(c.root, 'holds', user.tag), `${entry.dir}\n`);
    let done = false;
    const rebuild = c.obtain('image', 'k', {}, async (dir) => writeFile(join(dir, 'f'), 'v2'), false).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 800));
    expect(done).toBe(false);
    expect((await c.lookup('image', 'k'))?.files.f?.size).toBe(2);
    await user.stop();
    const r = await rebuild;
    expect(r.cached).toBe(false);
    expect((await readdir(join(c.root, 'image'))).sort()).toEqual(['k']);
  });

  it('lists what dead and live processes left, and removes only the dead ones', async () => {
    const c = await cache();
    await c.obtain('image', 'k', {}, async (dir) => writeFile(join(dir, 'f'), 'x'));
    const dead = await liveProcess();
    await dead.stop();
    const live = await liveProcess();
    try {
      await mkdir(join(c.root, 'image', `k2.tmp-${dead.tag}`), { recursive: true });
      await writeFile(join(c.root, 'image', `k2.tmp-${dead.tag}`, 'half.img'), 'x'.repeat(1000));
      await mkdir(join(c.root, 'image', `k3.tmp-${live.tag}`), { recursive: true });
      await mkdir(join(c.root, 'work', `build-${dead.tag}-Ab12Cd`), { recursive: true });
      await mkdir(join(c.root, 'kernel-trees', `linux-6.1-x86_64.new-${dead.tag}.extract-${dead.tag}`), { recursive: true });
      await mkdir(join(c.root, 'locks'), { recursive: true });
      await writeFile(join(c.root, 'locks', 'image.k4'), `${dead.tag}\n`);
      await writeFile(join(c.root, 'locks', 'image.k5'), `${live.tag}\n`);
      const left = await c.leftovers();
      const state = Object.fromEntries(left.map((l) => [l.path.slice(c.root.length + 1), l.alive]));
      expect(state).toEqual({
        [`image/k2.tmp-${dead.tag}`]: false,
        [`image/k3.tmp-${live.tag}`]: true,
        [`work/build-${dead.tag}-Ab12Cd`]: false,
        [`kernel-trees/linux-6.1-x86_64.new-${dead.tag}.extract-${dead.tag}`]: false,
        'locks/image.k4': false,
        'locks/image.k5': true,
        [`holds/${ownerTag()}`]: true,
      });
      expect(left.find((l) => l.path.endsWith(`k2.tmp-${dead.tag}`))?.bytes).toBe(1000);
      await c.reapDead();
      expect((await c.leftovers()).map((l) => l.path.slice(c.root.length + 1)).sort()).toEqual([
        `holds/${ownerTag()}`,
        `image/k3.tmp-${live.tag}`,
        'locks/image.k5',
      ]);
      expect((await c.list()).map((e) => e.key)).toEqual(['k']);
    } finally {
      await live.stop();
    }
  });

  it('prunes nothing that a live process holds or is building', async () => {
    const c = await cache();
    for (const k of ['a', 'b']) await c.obtain('image', k, {}, async (dir) => writeFile(join(dir, 'f'), k));
    const other = await liveProcess();
    try {
      await mkdir(join(c.root, 'holds'), { recursive: true });
      await writeFile(join(c.root, 'holds', other.tag), `${join(c.root, 'image', 'a')}\n`);
      await mkdir(join(c.root, 'kernel-trees', 'linux-6.1-x86_64'), { recursive: true });
      await mkdir(join(c.root, 'kernel-trees', 'linux-6.2-x86_64'), { recursive: true });
      await mkdir(join(c.root, 'locks'), { recursive: true });
      await writeFile(join(c.root, 'locks', 'kernel-trees.linux-6.1-x86_64'), `${other.tag}\n`);
      const r = await c.prune(0);
      expect(r.inUse.map((p) => p.slice(c.root.length + 1)).sort()).toEqual(['image/a', 'kernel-trees/linux-6.1-x86_64']);
      expect(await stat(join(c.root, 'image', 'a')).then(() => true)).toBe(true);
      expect(await readdir(join(c.root, 'kernel-trees'))).toEqual(['linux-6.1-x86_64']);
      expect(await readdir(join(c.root, 'image'))).toEqual(['a']);
    } finally {
      await other.stop();
    }
  });

  it('hashes a file again only when its stamp changed since it last matched', async () => {
    const c = await cache();
    const { entry } = await c.obtain('initrd', 'k', {}, async (dir) => writeFile(join(dir, 'x'), 'abcdef'));
    const file = join(entry.dir, 'x');
    const { ctimeNs } = await stampFile(file);
    while ((await fsClock(file)) <= ctimeNs);
    expect(await c.lookup('initrd', 'k')).toBeDefined(); // hashed, matched: its stamp is recorded
    // A recorded stamp is trusted: a wrong stored sha256 goes unnoticed while the file is untouched…
    const json = join(entry.dir, 'entry.json');
    const stored = JSON.parse(await readFile(json, 'utf8'));
    stored.files.x.sha256 = '0'.repeat(64);
    await writeFile(json, JSON.stringify(stored));
    expect(await c.lookup('initrd', 'k')).toBeDefined();
    // …and any change to the file, even with its size and mtime restored, makes it hashed again.
    const before = await stat(file);
    await writeFile(file, 'abcdeF');
    await utimes(file, before.atime, before.mtime);
    expect(await c.lookup('initrd', 'k')).toBeUndefined();
  });
});
