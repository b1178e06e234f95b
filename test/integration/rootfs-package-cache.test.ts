/**
 * The shared package cache with Docker and the real mmdebstrap: a small
 * Debian rootfs (agent as init: minbase + chrony, iptables, kmod) built cold,
 * warm, from a cache holding a corrupted .deb, and without the cache. The
 * build cache is this file's own (OSBUILDER_CACHE_DIR), so nothing else's
 * packages are touched or counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runCli, type CliResult } from '../support/cli.js';
import type { CacheListing } from '../../cli/commands/cache.js';
import type { BuildRootfsResult } from '../../rootfs-builder/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { buildContainers, buildDist, standInAgent, treeDigest } from '../support/rootfs.js';
import { snapshotPackages } from '../../rootfs-builder/package-cache.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';

let work: string;
let cacheDir: string;
let agent: string;
const built: Record<string, CliResult<BuildRootfsResult>> = {};

async function rootfs(name: string, extra: string[] = []): Promise<CliResult<BuildRootfsResult>> {
  const r = await runCli<BuildRootfsResult>(
    ['rootfs', 'debian', '--agent-init', '--bootstrap-base', '--agent', agent, '-o', join(work, name), ...extra, '--json'],
    {
      env: { SOURCE_DATE_EPOCH: SDE, OSBUILDER_CACHE_DIR: cacheDir },
    },
  );
  if (r.exitCode !== 0) throw new Error(`osbuilder rootfs (${name}) failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

const sha = async (p: string) =>
  createHash('sha256')
    .update(await readFile(p))
    .digest('hex');
const pkgDir = () => built.cold!.json!.packageCache!.dir as string;

/** Every path in the tree under a name ending in .deb. */
async function debsIn(root: string): Promise<string[]> {
  return (await treeDigest(root)).map((l) => l.split(' ')[0]!).filter((p) => p.endsWith('.deb'));
}

beforeAll(async () => {
  await buildDist();
  work = await makeTempDir('osb-pkgcache-');
  cacheDir = join(work, 'cache');
  agent = await standInAgent();
  built.cold = await rootfs('cold');
}, 30 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('package cache (debian, real mmdebstrap)', () => {
  it('a cold build downloads and stores every package under <cache>/packages/<key>', async () => {
    const pc = built.cold!.json!.packageCache!;
    expect(pc).toMatchObject({ before: 0, key: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(pc.dir).toBe(join(cacheDir, 'packages', pc.key));
    expect(pc.stored).toBe(pc.after);
    expect(pc.after).toBeGreaterThan(50);
    const names = await readdir(pc.dir);
    expect(names.filter((n) => !n.endsWith('.deb')).sort()).toEqual(['store.json']);
    for (const p of ['kmod', 'iptables', 'chrony', 'libc6', 'dpkg']) expect(names.some((n) => n.startsWith(`${p}_`))).toBe(true);
  });

  it('the rootfs holds no .deb and an empty apt archive', async () => {
    const dir = join(work, 'cold');
    expect(await debsIn(dir)).toEqual([]);
    expect((await readdir(join(dir, 'var/cache/apt/archives'), { recursive: true })).filter((n) => !['partial', 'lock'].includes(n))).toEqual([]);
  });

  it('a second build downloads nothing: the cache is unchanged, file by file, and the tree is identical', async () => {
    const before = await snapshotPackages(pkgDir());
    built.warm = await rootfs('warm');
    expect(built.warm!.json!.packageCache).toMatchObject({ before: before.size, stored: 0, after: before.size });
    expect(await snapshotPackages(pkgDir())).toEqual(before);
    expect(await treeDigest(join(work, 'warm'))).toEqual(await treeDigest(join(work, 'cold')));
  });

  it('a corrupted .deb in the cache is rejected by apt and downloaded again, not installed', async () => {
    const name = (await readdir(pkgDir())).find((n) => n.startsWith('kmod_') && n.endsWith('.deb'))!;
    const file = join(pkgDir(), name);
    const good = await sha(file);
    const bytes = await readFile(file);
    for (let i = bytes.length - 4096; i < bytes.length - 2048; i++) bytes[i] = bytes[i]! ^ 0xff;
    await writeFile(file, bytes); // same size: apt would trust it by size alone in archives/
    expect(await sha(file)).not.toBe(good);

    built.repaired = await rootfs('repaired');
    expect(built.repaired!.json!.packageCache!.stored).toBe(1);
    expect(await sha(file)).toBe(good);
    expect(await treeDigest(join(work, 'repaired'))).toEqual(await treeDigest(join(work, 'cold')));
  });

  it('--no-package-cache builds the same tree and leaves the cache alone', async () => {
    const before = await snapshotPackages(pkgDir());
    built.off = await rootfs('off', ['--no-package-cache']);
    expect(built.off!.json!.packageCache).toBeUndefined();
    expect(await snapshotPackages(pkgDir())).toEqual(before);
    expect(await treeDigest(join(work, 'off'))).toEqual(await treeDigest(join(work, 'cold')));
  });

  it('cache ls lists the package cache; no container and no temp file is left', async () => {
    const ls = await runCli<CacheListing>(['cache', 'ls', '--json'], { env: { OSBUILDER_CACHE_DIR: cacheDir } });
    expect(ls.exitCode, ls.stderr).toBe(0);
    expect(ls.json!.stores).toEqual([
      expect.objectContaining({
        top: 'packages',
        key: built.cold!.json!.packageCache!.key,
        info: expect.objectContaining({ suite: 'bookworm', arch: 'amd64' }),
      }),
    ]);
    for (const r of Object.values(built)) expect(await buildContainers(r.pid)).toEqual([]);
    expect((await readdir(pkgDir())).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
