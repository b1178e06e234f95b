/**
 * The shared package cache, planned (keys, paths, mounts, arguments) and its
 * hooks run for real with sh on a fake root (no Docker, no network).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache } from '../../core/cache.js';
import { APT_CACHE_SEED_HOOK, APT_CACHE_STORE_HOOK, PACKAGE_CACHE_ENV, PACKAGE_CACHE_OWNER_ENV } from '../../distros/common.js';
import { DISTROS } from '../../distros/index.js';
import { PACKAGE_CACHE_MOUNT, packageCacheKey, planRootfs, resolveRootfsOptions, withPackageCache, type RootfsOptions } from '../../rootfs-builder/index.js';
import { rootfsOptionsFromCli } from '../../rootfs-builder/options.js';
import { listPackagesArgv, packageCacheEnv, packageCacheReport, parsePackageListing, snapshotPackages } from '../../rootfs-builder/package-cache.js';
import { liveProcess } from '../support/owner.js';

const ROOT = '/osb-test-cache-root';

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
afterAll(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});
const CTX = { toolVersion: 'test', sourceDateEpoch: 1700000000 };

function plan(opts: Partial<RootfsOptions> & { distro: string }, packageCacheRoot: string | null = ROOT) {
  return planRootfs(resolveRootfsOptions({ output: '/out/rootfs', ...opts }, 'x86_64'), { ...CTX, ...(packageCacheRoot ? { packageCacheRoot } : {}) });
}

describe('package cache: keys and plans', () => {
  it('is keyed by mirror + suite + arch only: package sets and init modes share it', () => {
    const base = { mirror: 'http://deb.debian.org/debian', suite: 'bookworm', arch: 'amd64' };
    expect(packageCacheKey(base)).toMatch(/^[0-9a-f]{32}$/);
    expect(packageCacheKey({ ...base, mirror: `${base.mirror}/` })).toBe(packageCacheKey(base));
    for (const other of [{ mirror: 'http://mirror.example/debian' }, { suite: 'trixie' }, { arch: 'arm64' }]) {
      expect(packageCacheKey({ ...base, ...other })).not.toBe(packageCacheKey(base));
    }
    const systemd = plan({ distro: 'debian' }).packageCache!;
    const init = plan({ distro: 'debian', agentInit: true, extraPackages: ['strace'] }).packageCache!;
    expect(init.key).toBe(systemd.key);
    expect(systemd.source).toEqual(base);
    expect(plan({ distro: 'debian', osVersion: 'trixie' }).packageCache!.key).not.toBe(systemd.key);
    expect(plan({ distro: 'debian', arch: 'aarch64' }).packageCache!.source.arch).toBe('arm64');
  });

  it('container engines: <cache>/packages/<key> bind-mounted into the builder, outside the rootfs', () => {
    const pc = plan({ distro: 'debian' }).packageCache!;
    expect(pc.hostDir).toBe(`${ROOT}/packages/${pc.key}`);
    expect(pc.dir).toBe(PACKAGE_CACHE_MOUNT);
    expect(pc.mounts).toEqual([{ host: pc.hostDir, container: PACKAGE_CACHE_MOUNT }]);
    expect(pc.volumes).toEqual([]);
    expect(PACKAGE_CACHE_MOUNT.startsWith('/rootfs')).toBe(false);
    expect(packageCacheEnv(pc, '12-34')).toEqual({ [PACKAGE_CACHE_ENV]: PACKAGE_CACHE_MOUNT, [PACKAGE_CACHE_OWNER_ENV]: '12-34' });
  });

  it('--engine native: the host directory itself, no mount', () => {
    const pc = plan({ distro: 'debian', engine: 'native' }).packageCache!;
    expect(pc.dir).toBe(pc.hostDir);
    expect(pc.mounts).toEqual([]);
    expect(pc.volumes).toEqual([]);
  });

  it('a remote engine (no shared path): a named volume per archive on its side, no host path', () => {
    const pc = planRootfs(resolveRootfsOptions({ output: '/out/rootfs', distro: 'debian' }, 'x86_64'), { ...CTX, packageCacheRoot: ROOT, remoteEngine: true })
      .packageCache!;
    expect(pc.mounts).toEqual([]);
    expect(pc.volumes).toEqual([{ volume: `osbuilder-packages-${pc.key}`, container: PACKAGE_CACHE_MOUNT }]);
    expect(pc.dir).toBe(PACKAGE_CACHE_MOUNT);
    expect(pc.key).toBe(plan({ distro: 'debian' }).packageCache!.key);
  });

  it("a volume's listing (find in the builder) reads as a snapshot: .debs only, a rewritten file differs", async () => {
    const dir = await tempDir('osb-pclist-');
    await writeFile(join(dir, 'a_1_amd64.deb'), 'aaa');
    await writeFile(join(dir, 'b_1_amd64.deb'), 'bb');
    await writeFile(join(dir, '.partial.deb'), 'x');
    await writeFile(join(dir, 'lock'), '');
    const list = async () => parsePackageListing((await execa(listPackagesArgv(dir)[0]!, listPackagesArgv(dir).slice(1))).stdout);
    const before = await list();
    expect([...before.keys()]).toEqual(['a_1_amd64.deb', 'b_1_amd64.deb']);
    expect(before.get('a_1_amd64.deb')).toMatch(/^3:/);
    await rm(join(dir, 'b_1_amd64.deb'));
    await writeFile(join(dir, 'b_1_amd64.deb'), 'b2');
    const after = await list();
    expect(after.get('a_1_amd64.deb')).toBe(before.get('a_1_amd64.deb'));
    expect(after.get('b_1_amd64.deb')).not.toBe(before.get('b_1_amd64.deb'));
  });

  it('Debian and Ubuntu have it; the others (busybox takes its binary from the builder image) do not', () => {
    const withCache = DISTROS.filter((d) => d.packageCache).map((d) => d.name);
    expect(withCache).toEqual(['debian', 'ubuntu']);
    expect(plan({ distro: 'ubuntu' }).packageCache!.source).toEqual({ mirror: 'http://archive.ubuntu.com/ubuntu', suite: 'jammy', arch: 'amd64' });
    for (const d of ['busybox', 'alpine', 'fedora']) expect(plan({ distro: d }).packageCache).toBeUndefined();
  });

  it('off with --no-package-cache, and absent when planned without a cache root (as cache keys are)', () => {
    expect(plan({ distro: 'debian', packageCache: false }).packageCache).toBeUndefined();
    expect(plan({ distro: 'debian' }, null).packageCache).toBeUndefined();
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o', packageCache: false }, {}).packageCache).toBe(false);
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o', packageCache: true }, {}).packageCache).toBeUndefined();
  });

  it('changes nothing else in the plan: the bootstrap commands are the same with or without it', () => {
    const { packageCache, ...withIt } = plan({ distro: 'debian' });
    expect(packageCache).toBeDefined();
    expect(withIt).toEqual(plan({ distro: 'debian' }, null));
    expect(withIt).toEqual(plan({ distro: 'debian', packageCache: false }));
  });

  it('adds the hooks to the mmdebstrap command only, right after argv[0]', () => {
    const p = plan({ distro: 'debian' });
    const mmdebstrap = p.bootstrap.find((c) => c.argv[0] === 'mmdebstrap')!;
    const cmd = withPackageCache(mmdebstrap, p.packageCache);
    expect(cmd.argv.slice(0, 4)).toEqual([
      'mmdebstrap',
      '--skip=essential/unlink',
      `--setup-hook=${APT_CACHE_SEED_HOOK}`,
      `--customize-hook=${APT_CACHE_STORE_HOOK}`,
    ]);
    expect(cmd.argv.slice(4)).toEqual(mmdebstrap.argv.slice(1));
    const other = { title: 'depmod', argv: ['depmod', '-b', '/rootfs', '6.1'] };
    expect(withPackageCache(other, p.packageCache)).toBe(other);
    expect(withPackageCache({ ...mmdebstrap, builderOnly: true }, p.packageCache).argv).toEqual(mmdebstrap.argv);
    expect(withPackageCache(mmdebstrap, undefined)).toBe(mmdebstrap);
  });

  it('the hooks name no path: they read the directory from the environment, and seed partial/, never archives/', () => {
    for (const hook of [APT_CACHE_SEED_HOOK, APT_CACHE_STORE_HOOK]) {
      expect(hook).toContain(`"$${PACKAGE_CACHE_ENV}"`);
      expect(hook).not.toContain(ROOT);
    }
    expect(APT_CACHE_SEED_HOOK).toContain('"$1/var/cache/apt/archives/partial/"');
  });
});

async function fakeBuild(): Promise<{ root: string; cache: string; env: Record<string, string> }> {
  const top = await tempDir('osb-pkghooks-');
  const root = join(top, 'rootfs');
  const cache = join(top, 'cache');
  await mkdir(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
  await mkdir(cache);
  return { root, cache, env: { [PACKAGE_CACHE_ENV]: cache, [PACKAGE_CACHE_OWNER_ENV]: '1-2' } };
}

const hook = (script: string, b: { root: string; env: Record<string, string> }) => execa('sh', ['-c', script, 'exec', b.root], { env: b.env });

describe('package cache: the hooks, run with sh', () => {
  it('seed: a private copy of every cached .deb in partial/, mtimes kept; an empty cache is fine', async () => {
    const b = await fakeBuild();
    await hook(APT_CACHE_SEED_HOOK, b);
    expect(await readdir(join(b.root, 'var/cache/apt/archives/partial'))).toEqual([]);
    await writeFile(join(b.cache, 'a_1_amd64.deb'), 'A');
    await writeFile(join(b.cache, 'store.json'), '{}');
    await utimes(join(b.cache, 'a_1_amd64.deb'), 1600000000, 1600000000);
    await hook(APT_CACHE_SEED_HOOK, b);
    const seeded = join(b.root, 'var/cache/apt/archives/partial/a_1_amd64.deb');
    expect(await readdir(join(b.root, 'var/cache/apt/archives/partial'))).toEqual(['a_1_amd64.deb']);
    expect(await readdir(join(b.root, 'var/cache/apt/archives'))).toEqual(['partial']);
    expect((await stat(seeded)).ino).not.toBe((await stat(join(b.cache, 'a_1_amd64.deb'))).ino);
    expect((await stat(seeded)).mtimeMs).toBe(1600000000_000);
  });

  it('store: publishes new and changed .debs by rename, leaves equal ones alone, leaves no temp file', async () => {
    const b = await fakeBuild();
    const archives = join(b.root, 'var/cache/apt/archives');
    await writeFile(join(b.cache, 'same_1_all.deb'), 'S');
    await writeFile(join(b.cache, 'bad_1_all.deb'), 'corrupt');
    for (const [n, c] of [
      ['same_1_all.deb', 'S'],
      ['bad_1_all.deb', 'good!!!'],
      ['new_1_all.deb', 'N'],
    ])
      await writeFile(join(archives, n!), c!);
    const before = await snapshotPackages(b.cache);
    await hook(APT_CACHE_STORE_HOOK, b);
    expect((await readdir(b.cache)).sort()).toEqual(['bad_1_all.deb', 'new_1_all.deb', 'same_1_all.deb']);
    expect(await readFile(join(b.cache, 'bad_1_all.deb'), 'utf8')).toBe('good!!!');
    const after = await snapshotPackages(b.cache);
    expect(after.get('same_1_all.deb')).toBe(before.get('same_1_all.deb'));
    const pc = { key: 'k', hostDir: b.cache } as Parameters<typeof packageCacheReport>[0];
    expect(packageCacheReport(pc, before, after)).toEqual({ dir: b.cache, key: 'k', before: 2, stored: 2, after: 3 });
    expect(packageCacheReport(pc, after, await snapshotPackages(b.cache)).stored).toBe(0);
  });
});

describe('package cache: a store of the build cache', () => {
  it("is made with store.json, listed, held by its user, and cleared of dead builds' temp files", async () => {
    const c = new BuildCache(await tempDir('osb-cache-'));
    const dead = await liveProcess();
    await dead.stop();
    await mkdir(join(c.root, 'packages', 'k1'), { recursive: true });
    await writeFile(join(c.root, 'packages', 'k1', `.x_1_all.deb.tmp-${dead.tag}-Ab12Cd`), 'half');
    const dir = await c.openStore('packages', 'k1', { mirror: 'http://m/debian', suite: 'bookworm', arch: 'amd64' });
    await writeFile(join(dir, 'x_1_all.deb'), 'xx');
    expect(await readdir(dir)).toEqual(['store.json', 'x_1_all.deb']);
    const [s] = await c.stores();
    expect(s).toMatchObject({ top: 'packages', name: 'k1', files: 1, info: { suite: 'bookworm' } });
    expect(await c.list()).toEqual([]);
    expect(await readFile(join(c.root, 'holds', (await readdir(join(c.root, 'holds')))[0]!), 'utf8')).toContain(dir);
  });

  it('prune keeps the newest --keep stores, and none that another live build holds', async () => {
    const c = new BuildCache(await tempDir('osb-cache-'));
    for (const [k, t] of [
      ['old', 1600000000],
      ['mid', 1650000000],
      ['new', 1700000000],
    ] as const) {
      await c.openStore('packages', k, { suite: k });
      await utimes(join(c.root, 'packages', k, 'store.json'), t, t);
    }
    expect((await c.stores()).map((s) => s.name)).toEqual(['new', 'mid', 'old']);
    const other = await liveProcess();
    try {
      await writeFile(join(c.root, 'holds', other.tag), `${join(c.root, 'packages', 'old')}\n`);
      const r = await c.prune(1);
      expect(r.removed.map((p) => p.slice(c.root.length + 1))).toEqual(['packages/mid']);
      expect(r.inUse.map((p) => p.slice(c.root.length + 1))).toEqual(['packages/old']);
      expect((await readdir(join(c.root, 'packages'))).sort()).toEqual(['new', 'old']);
    } finally {
      await other.stop();
    }
  });
});

describe('package cache: not part of the rootfs stage key', () => {
  it('osbuilder build keys the image/initrd the same with and without --no-package-cache', async () => {
    const { planBuild } = await import('../../pipeline/plan.js');
    const { rootfsInputs, stageContext } = await import('../../pipeline/stages.js');
    const parts = {
      cache: new BuildCache('/osb-test-cache-root'),
      workDir: '/w',
      agent: { path: '/a', sha256: 'a'.repeat(64), source: 'default' },
      sourceDateEpoch: 1700000000,
    };
    const key = (noPackageCache: boolean) => {
      const p = planBuild({ image: true, initrd: true, noPackageCache }, undefined, 'x86_64');
      const ctx = stageContext(p, { noPackageCache }, parts);
      return p.rootfs.map((job) => rootfsInputs(ctx, job));
    };
    expect(key(true)).toEqual(key(false));
    expect(key(false)).toHaveLength(2);
  });
});
