/**
 * Real rootfs builds through the compiled CLI with Docker: Debian with
 * systemd, Debian with the agent as init (plus kernel modules), and busybox.
 * Base images are made locally (--bootstrap-base): no registry is reachable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFile, lstat, mkdir, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runCli, type CliResult } from '../support/cli.js';
import type { BuildRootfsResult } from '../../rootfs-builder/index.js';
import { debianCloudKernel, makeTempDir } from '../support/fixtures.js';
import { buildContainers, buildDist, importRootfs, standInAgent, treeDigest } from '../support/rootfs.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';

let work: string;
let agent: string;
/** The three trees every describe reads, built once in beforeAll. */
let built: Record<'debianSystemd' | 'debianInit' | 'busybox', CliResult<BuildRootfsResult>>;
let modulesKver = '';

async function rootfs(name: string, args: string[]): Promise<CliResult<BuildRootfsResult>> {
  const r = await runCli<BuildRootfsResult>(['rootfs', ...args, '-o', join(work, name), '--bootstrap-base', '--agent', agent, '--json'], {
    env: { SOURCE_DATE_EPOCH: SDE },
  });
  if (r.exitCode !== 0) throw new Error(`osbuilder rootfs ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

beforeAll(async () => {
  await buildDist();
  work = await makeTempDir('osb-rootfs-');
  agent = await standInAgent();
  // A real modules tree: two modules of Debian's cloud kernel, vfat depending on fat.
  const vmlinuz = await debianCloudKernel();
  const modRoot = join(vmlinuz, '../../lib/modules');
  modulesKver = (await readdir(modRoot))[0]!;
  const mods = join(work, 'modules', modulesKver, 'kernel/fs/fat');
  await mkdir(mods, { recursive: true });
  for (const m of ['fat.ko', 'vfat.ko']) await copyFile(join(modRoot, modulesKver, 'kernel/fs/fat', m), join(mods, m));

  built = {
    debianSystemd: await rootfs('debian-systemd', ['debian']),
    debianInit: await rootfs('debian-init', ['debian', '--agent-init', '--kernel-modules', join(work, 'modules', modulesKver)]),
    busybox: await rootfs('busybox', ['busybox']),
  };
}, 40 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  await execa('docker', ['rmi', '-f', `osbuilder-test/rootfs-debian:${process.pid}`], { reject: false });
});

describe('debian, systemd mode', () => {
  const dir = () => join(work, 'debian-systemd');

  it('reports what it built', () => {
    expect(built.debianSystemd.json).toMatchObject({
      rootfs: dir(),
      distro: 'debian',
      version: 'bookworm',
      arch: 'x86_64',
      initMode: 'systemd',
      engine: 'docker',
      baseImage: 'osbuilder/debian-base:bookworm-x86_64',
      osRelease: 'Debian GNU/Linux 12 (bookworm)',
      agent: { init: false, source: 'stand-in-agent' },
    });
    expect(built.debianSystemd.json!.builderImage).toMatch(/^osbuilder\/rootfs-builder-debian:bookworm-x86_64-[0-9a-f]{12}$/);
  });

  it('is Debian bookworm with systemd as /sbin/init and the agent installed 0755, owned by root', async () => {
    expect(await readFile(join(dir(), 'etc/os-release'), 'utf8')).toMatch(/^VERSION_CODENAME=bookworm$/m);
    expect(await readlink(join(dir(), 'sbin/init'))).toBe('/lib/systemd/systemd');
    const a = await stat(join(dir(), 'usr/bin/kata-agent'));
    expect(a.mode & 0o7777).toBe(0o755);
    expect(a.uid).toBe(0);
    expect(await readFile(join(dir(), 'usr/bin/kata-agent'))).toEqual(await readFile(agent));
  });

  it('has the agent units, enabled as Kata does, and the trimmed units gone', async () => {
    const units = join(dir(), 'usr/lib/systemd/system');
    expect(await readFile(join(units, 'kata-agent.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/kata-agent$/m);
    expect(await readFile(join(units, 'kata-containers.target'), 'utf8')).toMatch(/^Requires=kata-agent.service$/m);
    expect(await readlink(join(dir(), 'etc/systemd/system/basic.target.wants/kata-containers.target'))).toBe('/usr/lib/systemd/system/kata-containers.target');
    const present = await readdir(units);
    for (const gone of [
      'systemd-journald.service',
      'systemd-journald.socket',
      'systemd-timesyncd.service',
      'systemd-random-seed.service',
      'systemd-tmpfiles-setup.service',
      'systemd-update-utmp.service',
    ]) {
      expect(present).not.toContain(gone);
    }
    expect(present).toContain('systemd-logind.service');
    const generators = await readdir(join(dir(), 'usr/lib/systemd/system-generators'));
    for (const g of ['systemd-fstab-generator', 'systemd-getty-generator', 'systemd-gpt-auto-generator']) expect(generators).not.toContain(g);
    expect(await readFile(join(dir(), 'etc/systemd/system/tmp.mount'), 'utf8')).toMatch(/^Where=\/tmp$/m);
    expect((await stat(join(dir(), 'etc/machine-id'))).size).toBe(0);
    expect((await lstat(join(dir(), 'etc/resolv.conf'))).isFile()).toBe(true);
  });

  it('records metadata and the package list', async () => {
    const meta = parse(await readFile(join(dir(), 'var/lib/osbuilder/osbuilder.yaml'), 'utf8'));
    expect(meta).toMatchObject({
      architecture: 'x86_64',
      'rootfs-creation-time': '2023-11-14T22:13:20.000Z',
      'base-distro': { name: 'debian', version: 'bookworm', packages: { default: ['chrony', 'init', 'iptables', 'kmod', 'systemd'], extra: [] } },
      agent: { path: '/usr/bin/kata-agent', sha256: built.debianSystemd.json!.agent.sha256, 'agent-is-init-daemon': 'no' },
      init: 'systemd',
    });
    const pkgs = (await readFile(join(dir(), 'var/lib/osbuilder/packages.txt'), 'utf8')).trim().split('\n');
    expect(pkgs).toEqual([...pkgs].sort());
    for (const p of ['systemd', 'chrony', 'kmod', 'iptables', 'init']) expect(pkgs.some((l) => l.startsWith(`${p}=`))).toBe(true);
    expect(await readdir(join(dir(), 'var/log'))).not.toContain('dpkg.log');
    expect(await readdir(join(dir(), 'var/cache/ldconfig')).catch(() => [])).not.toContain('aux-cache');
  });

  it('every mtime is SOURCE_DATE_EPOCH', async () => {
    const lines = await treeDigest(join(dir(), 'etc'));
    expect(lines.length).toBeGreaterThan(50);
    expect(lines.filter((l) => l.split(' ')[4] !== SDE)).toEqual([]);
  });

  it('systemd accepts the units inside the guest (testcontainers + systemd-analyze verify)', async () => {
    const { GenericContainer } = await import('testcontainers');
    const image = await importRootfs(dir(), `osbuilder-test/rootfs-debian:${process.pid}`);
    const c = await new GenericContainer(image).withCommand(['sleep', 'infinity']).start();
    try {
      const osr = await c.exec(['cat', '/etc/os-release']);
      expect(osr.stdout).toBe(await readFile(join(dir(), 'etc/os-release'), 'utf8'));
      const verify = await c.exec([
        'systemd-analyze',
        'verify',
        '--man=no',
        '/usr/lib/systemd/system/kata-containers.target',
        '/usr/lib/systemd/system/kata-agent.service',
      ]);
      expect(verify.exitCode, verify.output).toBe(0);
      // The same check fails on a target requiring a unit the guest lacks.
      await c.exec(['sh', '-c', 'printf "[Unit]\\nRequires=no-such.service\\n" > /etc/systemd/system/broken.target']);
      const broken = await c.exec(['systemd-analyze', 'verify', '--man=no', '/etc/systemd/system/broken.target']);
      expect(broken.exitCode).not.toBe(0);
    } finally {
      await c.stop();
    }
  });

  it('left no container and no temp directory behind', async () => {
    expect(await buildContainers(process.pid)).toEqual([]);
    expect((await readdir(work)).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('debian, agent as init, with kernel modules', () => {
  const dir = () => join(work, 'debian-init');

  it('makes the agent /sbin/init and /init, without systemd', async () => {
    expect(built.debianInit.json).toMatchObject({ initMode: 'agent-init', agent: { init: true }, kernelModules: modulesKver });
    expect(await readlink(join(dir(), 'usr/sbin/init'))).toBe('/usr/bin/kata-agent');
    expect(await readlink(join(dir(), 'init'))).toBe('/usr/bin/kata-agent');
    const pkgs = await readFile(join(dir(), 'var/lib/osbuilder/packages.txt'), 'utf8');
    expect(pkgs).not.toMatch(/^systemd=/m);
    expect(pkgs).toMatch(/^kmod=/m);
    const meta = parse(await readFile(join(dir(), 'var/lib/osbuilder/osbuilder.yaml'), 'utf8'));
    expect(meta.agent['agent-is-init-daemon']).toBe('yes');
    expect(meta['kernel-modules']).toBe(modulesKver);
  });

  it('is reproducible: rebuilt with the same inputs and SOURCE_DATE_EPOCH, every file, owner, mode and mtime matches', async () => {
    await rootfs('debian-init-again', ['debian', '--agent-init', '--kernel-modules', join(work, 'modules', modulesKver)]);
    const a = await treeDigest(dir());
    expect(a.length).toBeGreaterThan(5000);
    expect(await treeDigest(join(work, 'debian-init-again'))).toEqual(a);
  });

  it('copies the modules to /lib/modules/<release> and runs depmod for it', async () => {
    const m = join(dir(), 'lib/modules', modulesKver);
    expect((await readdir(join(m, 'kernel/fs/fat'))).sort()).toEqual(['fat.ko', 'vfat.ko']);
    const dep = await readFile(join(m, 'modules.dep'), 'utf8');
    expect(dep).toMatch(/^kernel\/fs\/fat\/vfat\.ko: kernel\/fs\/fat\/fat\.ko$/m);
    expect(dep).toMatch(/^kernel\/fs\/fat\/fat\.ko:$/m);
  });
});

describe('busybox', () => {
  const dir = () => join(work, 'busybox');

  it('is a small static busybox tree with the agent as init and no package manager', async () => {
    expect(built.busybox.json).toMatchObject({ distro: 'busybox', initMode: 'agent-init', packages: 1 });
    expect(await readlink(join(dir(), 'bin/sh'))).toBe('/bin/busybox');
    expect(await readlink(join(dir(), 'sbin/init'))).toBe('/usr/bin/kata-agent');
    expect(await readdir(join(dir(), 'usr/bin'))).not.toContain('apt');
    expect(await readFile(join(dir(), 'etc/os-release'), 'utf8')).toMatch(/^ID=busybox$/m);
    expect(await readFile(join(dir(), 'var/lib/osbuilder/packages.txt'), 'utf8')).toMatch(/^busybox-static=1:1\.\d+/);
    const { stdout } = await execa('du', ['-sk', dir()]);
    expect(Number(stdout.split('\t')[0])).toBeLessThan(8 * 1024);
  });

  it('is reproducible: a second build with the same SOURCE_DATE_EPOCH is identical', async () => {
    await rootfs('busybox-again', ['busybox']);
    expect(await treeDigest(join(work, 'busybox-again'))).toEqual(await treeDigest(dir()));
  });

  it('--base-image: any local image as the builder base', async () => {
    const r = await runCli<BuildRootfsResult>(
      ['rootfs', 'busybox', '--base-image', 'osbuilder/debian-base:bookworm-x86_64', '--agent', agent, '-o', join(work, 'busybox-given-base'), '--json'],
      { env: { SOURCE_DATE_EPOCH: SDE } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.baseImage).toBe('osbuilder/debian-base:bookworm-x86_64');
    expect(await treeDigest(join(work, 'busybox-given-base'))).toEqual(await treeDigest(dir()));
  });

  it('--engine native (no container: the host tools, as rootfs.sh without USE_DOCKER) gives the same layout', async () => {
    const r = await runCli<BuildRootfsResult>(['rootfs', 'busybox', '--engine', 'native', '--agent', agent, '-o', join(work, 'busybox-native'), '--json'], {
      env: { SOURCE_DATE_EPOCH: SDE },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ engine: 'native', initMode: 'agent-init' });
    expect(r.json!.builderImage).toBeUndefined();
    const paths = async (d: string) => (await treeDigest(d)).map((l) => l.split(' ')[0]).filter((p) => !p!.startsWith('/var/lib/osbuilder'));
    expect(await paths(join(work, 'busybox-native'))).toEqual(await paths(dir()));
  });

  it('--engine podman (USE_PODMAN): the base made with mmdebstrap | podman import, the same tree as with docker', async () => {
    const r = await runCli<BuildRootfsResult>(
      ['rootfs', 'busybox', '--engine', 'podman', '--bootstrap-base', '--agent', agent, '-o', join(work, 'busybox-podman'), '--json'],
      { env: { SOURCE_DATE_EPOCH: SDE } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ engine: 'podman', initMode: 'agent-init', baseImage: 'osbuilder/debian-base:bookworm-x86_64' });
    const images = await execa('podman', ['images', '--format', '{{.Repository}}']);
    expect(String(images.stdout)).toContain('osbuilder/rootfs-builder-busybox');
    expect(await treeDigest(join(work, 'busybox-podman'))).toEqual(await treeDigest(dir()));
    const left = await execa('podman', ['ps', '-a', '--filter', `label=org.osbuilder.build=${r.pid}`, '--format', '{{.Names}}']);
    expect(String(left.stdout).trim()).toBe('');
  });

  it('rebuilding over an existing osbuilder rootfs replaces it', async () => {
    const before = await stat(join(dir(), 'var/lib/osbuilder/osbuilder.yaml'));
    await rootfs('busybox', ['busybox']);
    expect((await stat(join(dir(), 'var/lib/osbuilder/osbuilder.yaml'))).ino).not.toBe(before.ino);
    expect((await readdir(work)).filter((n) => n.startsWith('.busybox'))).toEqual([]);
  });
});
