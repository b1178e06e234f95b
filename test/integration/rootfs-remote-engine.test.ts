/**
 * `--docker-host` with an engine that shares no path with us: a second
 * dockerd in its own container (not --privileged; its own data-root volume, its
 * socket in a host temp dir). The rootfs is made in a volume on that engine
 * and comes back as a tar stream; busybox (with kernel modules, so depmod
 * runs there too) and Debian built through it are identical, entry by entry,
 * to the same builds on the local engine with the same SOURCE_DATE_EPOCH.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFile, lstat, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, repoRoot, runCli, type CliResult } from '../support/cli.js';
import type { BuildRootfsResult } from '../../rootfs-builder/index.js';
import { debianCloudKernel, makeTempDir } from '../support/fixtures.js';
import { loadImage, startRemoteEngine } from '../support/remote-engine.mjs';
import { buildDist, standInAgent, treeDigest } from '../support/rootfs.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';
const BASE = 'osbuilder/debian-base:bookworm-x86_64';

let work: string;
let agent: string;
let modules: string;
let remote: Awaited<ReturnType<typeof startRemoteEngine>> | undefined;
const built: Record<string, CliResult<BuildRootfsResult>> = {};

async function rootfs(name: string, distro: string, extra: string[], dockerHost?: string): Promise<CliResult<BuildRootfsResult>> {
  const args = ['rootfs', distro, ...extra, '-o', join(work, name), '--bootstrap-base', '--agent', agent, '--json'];
  if (dockerHost) args.push('--docker-host', dockerHost);
  const r = await runCli<BuildRootfsResult>(args, { env: { SOURCE_DATE_EPOCH: SDE } });
  if (r.exitCode !== 0) throw new Error(`osbuilder ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function modulesTree(): Promise<string> {
  const modRoot = join(await debianCloudKernel(), '../../lib/modules');
  const kver = (await readdir(modRoot))[0]!;
  const dir = join(work, 'modules', kver, 'kernel/fs/fat');
  await mkdir(dir, { recursive: true });
  for (const m of ['fat.ko', 'vfat.ko']) await copyFile(join(modRoot, kver, 'kernel/fs/fat', m), join(dir, m));
  return join(work, 'modules', kver);
}

/** What a CLI process left on an engine, by the label every osbuilder container and volume carries. */
async function leftovers(pid: number, host?: string): Promise<string[]> {
  const h = host ? ['-H', host] : [];
  const filter = ['--filter', `label=org.osbuilder.build=${pid}`];
  const ps = await execa('docker', [...h, 'ps', '-a', ...filter, '--format', '{{.Names}}']);
  const vols = await execa('docker', [...h, 'volume', 'ls', '-q', ...filter]);
  return `${ps.stdout}\n${vols.stdout}`.split('\n').filter(Boolean);
}

beforeAll(async () => {
  await buildDist();
  work = await makeTempDir('osb-remote-');
  agent = await standInAgent();
  modules = await modulesTree();
  remote = await startRemoteEngine();
  await loadImage(BASE, remote.host); // as a user would: no second mmdebstrap there
  for (const [where, host] of [
    ['local', undefined],
    ['remote', remote.host],
  ] as const) {
    built[`busybox-${where}`] = await rootfs(`busybox-${where}`, 'busybox', ['--kernel-modules', modules], host);
    built[`debian-${where}`] = await rootfs(`debian-${where}`, 'debian', [], host);
  }
}, 40 * 60_000);

afterAll(async () => {
  await remote?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a remote engine (no shared path)', () => {
  it('built there: its builder images are on the remote engine', async () => {
    for (const distro of ['busybox', 'debian']) {
      const r = built[`${distro}-remote`]!;
      expect(r.json).toMatchObject({ distro, engine: 'docker', baseImage: BASE });
      const inspect = await execa('docker', ['-H', remote!.host, 'image', 'inspect', '--format', '{{.Id}}', r.json!.builderImage!], { reject: false });
      expect(inspect.exitCode, inspect.stderr).toBe(0);
    }
  });

  it.each(['busybox', 'debian'])(
    "%s: the tree is identical to the local engine's (paths, types, modes, owners, sizes, sha256, link targets, mtimes)",
    async (distro) => {
      const here = await treeDigest(join(work, `${distro}-local`));
      const there = await treeDigest(join(work, `${distro}-remote`));
      expect(there.length).toBeGreaterThan(distro === 'debian' ? 1000 : 100);
      expect(there).toEqual(here);
    },
  );

  it('device nodes and hard links came through the stream', async () => {
    const dir = join(work, 'debian-remote');
    const nul = await lstat(join(dir, 'dev/null'));
    expect(nul.isCharacterDevice()).toBe(true);
    expect(nul.rdev).toBe((await lstat('/dev/null')).rdev);
    // perl-base ships perl and perl5.x as one file.
    const bin = join(dir, 'usr/bin');
    const perlX = (await readdir(bin)).find((n) => /^perl5\.\d+\.\d+$/.test(n))!;
    const [a, b] = [await lstat(join(bin, 'perl')), await lstat(join(bin, perlX))];
    expect(a.nlink).toBeGreaterThan(1);
    expect(b.ino).toBe(a.ino);
  });

  it('depmod ran on the remote engine over the modules streamed in', async () => {
    const kver = modules.split('/').pop()!;
    const dep = await readFile(join(work, 'busybox-remote', 'lib/modules', kver, 'modules.dep'), 'utf8');
    expect(dep).toMatch(/^kernel\/fs\/fat\/vfat\.ko: kernel\/fs\/fat\/fat\.ko$/m);
  });

  it('the package cache is a volume on the remote engine, filled by the Debian build', async () => {
    const pc = built['debian-remote']!.json!.packageCache!;
    expect(pc.dir).toMatch(/^osbuilder-packages-[0-9a-f]{32}$/);
    expect(pc.stored).toBeGreaterThan(50);
    const ls = await execa('docker', [
      '-H',
      remote!.host,
      'run',
      '--rm',
      '--mount',
      `type=volume,src=${pc.dir},dst=/c`,
      BASE,
      'find',
      '/c',
      '-maxdepth',
      '1',
      '-name',
      '*.deb',
    ]);
    expect(ls.stdout.split('\n').filter(Boolean).length).toBe(pc.after);
    // The local build's cache is a host directory, not that volume.
    expect(built['debian-local']!.json!.packageCache!.dir).toMatch(/^\//);
  });

  it('SIGINT during a remote build removes its container and its volume there, and the partial rootfs', async () => {
    const out = join(work, 'interrupted');
    const child = execa('node', [cliPath, 'rootfs', 'busybox', '-o', out, '--agent', agent, '--docker-host', remote!.host], { cwd: repoRoot, reject: false });
    let seen: string[] = [];
    for (let i = 0; i < 600 && !seen.some((n) => n.startsWith('osbuilder-rootfs-volume-')); i++) {
      await new Promise((r) => setTimeout(r, 200));
      seen = await leftovers(child.pid!, remote!.host);
    }
    expect(seen).toContain(`osbuilder-rootfs-volume-${child.pid}-0`);
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(130);
    expect(await leftovers(child.pid!, remote!.host)).toEqual([]);
    expect((await readdir(work)).filter((n) => n.includes('interrupted'))).toEqual([]);
  });

  it('no container or volume of those builds is left on either engine', async () => {
    for (const [where, host] of [
      ['local', undefined],
      ['remote', remote!.host],
    ] as const) {
      for (const distro of ['busybox', 'debian']) expect(await leftovers(built[`${distro}-${where}`]!.pid, host)).toEqual([]);
    }
  });
});
