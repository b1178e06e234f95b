import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFile, chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withSafeRoot } from '../../core/fs-safe.js';
import {
  planRootfs,
  resolveRootfsOptions,
  verifyRootfs,
  locateKernelModules,
  checkRootfsOutput,
  AGENT_PATH,
  METADATA_PATH,
  PACKAGES_PATH,
} from '../../rootfs-builder/index.js';
import { applyFileOps } from '../../rootfs-builder/apply.js';
import { chronyConf, chronyService } from '../../rootfs-builder/transforms.js';
import { parseApkInstalled, parseDpkgStatus, parseNameVersionLines, clearBundles } from '../../rootfs-builder/packages.js';
import { renderMetadata } from '../../rootfs-builder/metadata.js';
import { packageNotFound } from '../../rootfs-builder/bootstrap.js';
import { getDistro } from '../../distros/index.js';
import { busyboxLayout } from '../../distros/busybox/definition.js';
import { OsbuilderError } from '../../core/errors.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'osb-finish-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(path: string, content = '', mode = 0o644): Promise<void> {
  await mkdir(join(root, path, '..'), { recursive: true });
  await writeFile(join(root, path), content, { mode });
}

/** A merged-/usr layout like Debian's, with the systemd files Kata trims. */
async function fakeSystemdRootfs(): Promise<void> {
  await mkdir(join(root, 'usr/lib/systemd/system'), { recursive: true });
  await mkdir(join(root, 'usr/sbin'), { recursive: true });
  await symlink('usr/lib', join(root, 'lib'));
  await symlink('usr/sbin', join(root, 'sbin'));
  await copyFile('/bin/busybox', join(root, 'usr/lib/systemd/systemd'));
  await chmod(join(root, 'usr/lib/systemd/systemd'), 0o755);
  await symlink('/lib/systemd/systemd', join(root, 'usr/sbin/init'));
  for (const u of [
    'systemd-journald.service',
    'systemd-journald.socket',
    'systemd-udevd.service',
    'systemd-timesyncd.service',
    'systemd-logind.service',
    'dbus.socket',
  ]) {
    await put(`usr/lib/systemd/system/${u}`, '[Unit]\n');
  }
  await put('usr/lib/systemd/system-generators/systemd-fstab-generator', '', 0o755);
  await put('usr/lib/systemd/system-generators/systemd-sysv-generator', '', 0o755);
  await mkdir(join(root, 'etc/systemd/system/sysinit.target.wants'), { recursive: true });
  await symlink('/lib/systemd/system/systemd-timesyncd.service', join(root, 'etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service'));
  await put('usr/share/systemd/tmp.mount', '[Mount]\nWhat=tmpfs\n');
  await put('etc/chrony/chrony.conf', 'pool 2.debian.pool.ntp.org iburst\nkeyfile /etc/chrony/chrony.keys\n');
  await put('usr/lib/systemd/system/chrony.service', '[Unit]\nDescription=chrony\n[Service]\nExecStart=/usr/sbin/chronyd -u _chrony -F 1\n');
  await put('etc/machine-id', '0123456789abcdef0123456789abcdef\n');
  await symlink('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc/resolv.conf'));
  await put('var/log/dpkg.log', 'log');
  await put('var/log/apt/history.log', 'log');
  await put('var/cache/ldconfig/aux-cache', 'x');
  await put('var/lib/systemd/random-seed', 'seed');
  await put('var/tmp/junk', 'x');
}

function debianPlan(agentInit: boolean) {
  const r = resolveRootfsOptions({ distro: 'debian', output: '/out/r', agentInit }, 'x86_64');
  return planRootfs(r, { toolVersion: 'test' });
}

describe('plan file operations on a systemd rootfs', () => {
  it('installs and enables the units, trims as Kata does, resets identity and logs', async () => {
    await fakeSystemdRootfs();
    const plan = debianPlan(false);
    await withSafeRoot(root, async (fs) => {
      await applyFileOps(fs, plan.fileOps);
      await fs.copyIn('/bin/busybox', '/usr/bin/kata-agent', { mode: 0o755 });
      const report = await verifyRootfs(fs, { arch: 'x86_64', initMode: 'systemd', asRoot: false });
      expect(report.init.resolvesTo).toBe('/usr/lib/systemd/systemd');
    });
    const units = await readdir(join(root, 'usr/lib/systemd/system'));
    expect(units.sort()).toEqual(['chrony.service', 'dbus.socket', 'kata-agent.service', 'kata-containers.target', 'systemd-logind.service']);
    expect(await readdir(join(root, 'usr/lib/systemd/system-generators'))).toEqual(['systemd-sysv-generator']);
    expect(await readdir(join(root, 'etc/systemd/system/sysinit.target.wants'))).toEqual([]);
    expect(await readlink(join(root, 'etc/systemd/system/basic.target.wants/kata-containers.target'))).toBe('/usr/lib/systemd/system/kata-containers.target');
    expect(await readlink(join(root, 'etc/systemd/system/kata-containers.target.wants/dbus.socket'))).toBe('/usr/lib/systemd/system/dbus.socket');
    expect(await readFile(join(root, 'etc/systemd/system/tmp.mount'), 'utf8')).toBe('[Mount]\nWhat=tmpfs\n');
    expect(await readFile(join(root, 'usr/lib/systemd/system/kata-agent.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/kata-agent$/m);
    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    expect((await lstat(join(root, 'etc/resolv.conf'))).isFile()).toBe(true);
    expect(await readlink(join(root, 'var/tmp'))).toBe('../tmp');
    expect(await readdir(join(root, 'var/log'))).toEqual(['apt']);
    expect(await readdir(join(root, 'var/log/apt'))).toEqual([]);
    await expect(lstat(join(root, 'var/cache/ldconfig/aux-cache'))).rejects.toThrow();
    await expect(lstat(join(root, 'var/lib/systemd/random-seed'))).rejects.toThrow();
    expect(await readlink(join(root, 'init'))).toBe('/sbin/init');
    expect(await readFile(join(root, 'etc/chrony/chrony.conf'), 'utf8')).toContain('# pool 2.debian.pool.ntp.org');
    expect(await readFile(join(root, 'usr/lib/systemd/system/chrony.service'), 'utf8')).toBe(
      '[Unit]\nConditionPathExists=/dev/ptp0\nDescription=chrony\n[Service]\nExecStart=/usr/sbin/chronyd -F 1\n',
    );
  });

  it("trims every unit and generator the issue names (Kata's lists, exact names), enablement links included", async () => {
    await fakeSystemdRootfs();
    const units = 'usr/lib/systemd/system';
    // udev and friends, journald, coredump, random-seed, timesyncd, tmpfiles-setup, update-utmp.
    const doomed = [
      'systemd-udevd.service',
      'systemd-udevd-control.socket',
      'systemd-udevd-kernel.socket',
      'systemd-udev-trigger.service',
      'systemd-journald.service',
      'systemd-journald.socket',
      'systemd-journald-dev-log.socket',
      'systemd-journal-flush.service',
      'systemd-coredump@.service',
      'systemd-random-seed.service',
      'systemd-timesyncd.service',
      'systemd-tmpfiles-setup.service',
      'systemd-update-utmp.service',
    ];
    for (const u of doomed) await put(`${units}/${u}`, '[Unit]\n');
    // Same prefix, other unit: Kata matches exact names, so these stay.
    await put(`${units}/systemd-tmpfiles-setup-dev.service`, '[Unit]\n');
    await put(`${units}/systemd-journald@.service`, '[Unit]\n');
    for (const g of ['systemd-getty-generator', 'systemd-gpt-auto-generator']) await put(`usr/lib/systemd/system-generators/${g}`, '', 0o755);
    await mkdir(join(root, 'etc/systemd/system/sockets.target.wants'), { recursive: true });
    await symlink('/lib/systemd/system/systemd-udevd-control.socket', join(root, 'etc/systemd/system/sockets.target.wants/systemd-udevd-control.socket'));
    await withSafeRoot(root, (fs) => applyFileOps(fs, debianPlan(false).fileOps));
    expect((await readdir(join(root, units))).sort()).toEqual([
      'chrony.service',
      'dbus.socket',
      'kata-agent.service',
      'kata-containers.target',
      'systemd-journald@.service',
      'systemd-logind.service',
      'systemd-tmpfiles-setup-dev.service',
    ]);
    expect(await readdir(join(root, 'usr/lib/systemd/system-generators'))).toEqual(['systemd-sysv-generator']);
    expect(await readdir(join(root, 'etc/systemd/system/sockets.target.wants'))).toEqual([]);
  });

  it('writes the fallback tmp.mount when the distro has none', async () => {
    await fakeSystemdRootfs();
    await rm(join(root, 'usr/share/systemd/tmp.mount'));
    await withSafeRoot(root, (fs) => applyFileOps(fs, debianPlan(false).fileOps));
    expect(await readFile(join(root, 'etc/systemd/system/tmp.mount'), 'utf8')).toMatch(/^Where=\/tmp$/m);
  });

  it('agent-init: /sbin/init and /init resolve to the agent', async () => {
    await mkdir(join(root, 'usr/sbin'), { recursive: true });
    await symlink('usr/sbin', join(root, 'sbin'));
    await withSafeRoot(root, async (fs) => {
      await applyFileOps(fs, debianPlan(true).fileOps);
      await fs.copyIn('/bin/busybox', '/usr/bin/kata-agent', { mode: 0o755 });
      const report = await verifyRootfs(fs, { arch: 'x86_64', initMode: 'agent-init', asRoot: false });
      expect(report.init.resolvesTo).toBe('/usr/bin/kata-agent');
    });
    expect(await readlink(join(root, 'usr/sbin/init'))).toBe('/usr/bin/kata-agent');
    expect(await readlink(join(root, 'init'))).toBe('/usr/bin/kata-agent');
    expect(await readdir(join(root, 'usr/lib').replace('/usr/lib', '/usr'))).not.toContain('lib');
  });
});

describe("a hostile rootfs: the builder's own writes never leave it", () => {
  it('/usr -> /, /etc and /var -> host directories, /init -> a host file: units, trim, agent, modules, metadata and checks stay inside', async () => {
    const host = await mkdtemp(join(tmpdir(), 'osb-hostile-host-'));
    const hostEtc = join(host, 'etc');
    const hostVar = join(host, 'var');
    const hostFile = join(host, 'secret');
    const kver = '0.0.0-osbuilder-hostile-test';
    try {
      await mkdir(hostEtc);
      await mkdir(join(hostVar, 'tmp'), { recursive: true });
      await mkdir(join(hostVar, 'log'));
      await writeFile(join(hostEtc, 'machine-id'), 'host-id\n');
      await writeFile(join(hostVar, 'tmp/keep'), 'k');
      await writeFile(join(hostVar, 'log/keep.log'), 'k');
      await writeFile(hostFile, 'host data\n');
      const mods = join(host, 'mods', kver);
      await mkdir(join(mods, 'kernel'), { recursive: true });
      await writeFile(join(mods, 'kernel/a.ko'), 'ko');
      const hostPaths = [
        '/usr/bin/kata-agent',
        '/usr/lib/systemd/system/kata-agent.service',
        '/usr/lib/systemd/system/kata-containers.target',
        `/lib/modules/${kver}`,
        '/var/lib/osbuilder',
      ];
      const before = await Promise.all(
        hostPaths.map((p) =>
          lstat(p).then(
            (st) => `${st.ino}:${st.mtimeMs}`,
            () => 'absent',
          ),
        ),
      );
      const hostTree = async () => (await listHost(host)).join('\n');
      const hostBefore = await hostTree();

      await symlink('/', join(root, 'usr'));
      await symlink(hostEtc, join(root, 'etc'));
      await symlink(hostVar, join(root, 'var'));
      await symlink(hostFile, join(root, 'init'));

      await withSafeRoot(root, async (fs) => {
        await applyFileOps(fs, debianPlan(false).fileOps);
        await applyFileOps(fs, debianPlan(true).fileOps);
        await applyFileOps(fs, busyboxLayout('bin/sh\nusr/bin/env\n'));
        await fs.copyIn('/bin/busybox', AGENT_PATH, { mode: 0o755 });
        await fs.copyTreeIn(mods, `/lib/modules/${kver}`);
        await fs.writeFile(PACKAGES_PATH, 'busybox-static=1:1.35.0-4+b3\n');
        await fs.writeFile(METADATA_PATH, '---\n');
        await fs.setAllTimes(1_700_000_000);
        const report = await verifyRootfs(fs, { arch: 'x86_64', initMode: 'agent-init', asRoot: false });
        expect(report.init.resolvesTo).toBe('/bin/kata-agent');
      });

      // The host: every file and directory as it was, with its mtime.
      expect(await hostTree()).toBe(hostBefore);
      expect(
        await Promise.all(
          hostPaths.map((p) =>
            lstat(p).then(
              (st) => `${st.ino}:${st.mtimeMs}`,
              () => 'absent',
            ),
          ),
        ),
      ).toEqual(before);
      // Where the writes landed: the links were resolved inside the root.
      expect((await readFile(join(root, 'bin/kata-agent'))).equals(await readFile('/bin/busybox'))).toBe(true);
      expect(await readFile(join(root, 'lib/systemd/system/kata-agent.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/kata-agent$/m);
      expect(await readFile(join(root, hostEtc, 'machine-id'), 'utf8')).toBe('');
      expect(await readlink(join(root, hostEtc, 'systemd/system/basic.target.wants/kata-containers.target'))).toBe(
        '/usr/lib/systemd/system/kata-containers.target',
      );
      expect(await readFile(join(root, hostVar, 'lib/osbuilder/osbuilder.yaml'), 'utf8')).toBe('---\n');
      expect(await readlink(join(root, hostVar, 'tmp'))).toBe('../tmp');
      expect(await readFile(join(root, 'lib/modules', kver, 'kernel/a.ko'), 'utf8')).toBe('ko');
      expect(await readlink(join(root, 'init'))).toBe(AGENT_PATH);
    } finally {
      await rm(host, { recursive: true, force: true });
    }
  });
});

/** path, type, mode, size, mtime of every entry under a host directory (links not followed). */
async function listHost(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const p = `${rel}/${name}`;
    const st = await lstat(join(dir, p));
    out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`);
    if (st.isDirectory()) out.push(...(await listHost(dir, p)));
  }
  return out;
}

describe('final checks refuse broken rootfs', () => {
  async function check(initMode: 'systemd' | 'agent-init', opts: { buildingUid?: number } = {}) {
    return withSafeRoot(root, (fs) => verifyRootfs(fs, { arch: 'x86_64', initMode, asRoot: false, ...opts }));
  }

  it('missing agent, script agent, wrong-arch agent, dynamic agent without its loader', async () => {
    await expect(check('agent-init')).rejects.toMatchObject({ code: 'MISSING_AGENT' });
    await put('usr/bin/kata-agent', '#!/bin/sh\n'.padEnd(100), 0o755);
    await expect(check('agent-init')).rejects.toMatchObject({ code: 'AGENT_INVALID' });
    await copyFile('/bin/ls', join(root, 'usr/bin/kata-agent'));
    await expect(check('agent-init')).rejects.toThrow(/needs \/lib64\/ld-linux-x86-64.so.2, which the rootfs does not have/);
  });

  it('dangling /sbin/init', async () => {
    await put('usr/bin/kata-agent', '', 0o755);
    await copyFile('/bin/busybox', join(root, 'usr/bin/kata-agent'));
    await mkdir(join(root, 'sbin'));
    await symlink('/lib/systemd/systemd', join(root, 'sbin/init'));
    await expect(check('systemd')).rejects.toMatchObject({ code: 'MISSING_INIT', message: '/sbin/init is a dangling symlink' });
    await rm(join(root, 'sbin/init'));
    await expect(check('systemd')).rejects.toMatchObject({ code: 'MISSING_INIT' });
  });

  it('systemd mode without its units, or without systemd', async () => {
    await put('usr/bin/kata-agent', '');
    await copyFile('/bin/busybox', join(root, 'usr/bin/kata-agent'));
    await chmod(join(root, 'usr/bin/kata-agent'), 0o755);
    await mkdir(join(root, 'sbin'));
    await symlink('/usr/bin/kata-agent', join(root, 'sbin/init'));
    await expect(check('systemd')).rejects.toThrow(/kata-agent.service is missing/);
    await put('usr/lib/systemd/system/kata-agent.service', '[Unit]\n');
    await put('usr/lib/systemd/system/kata-containers.target', '[Unit]\n');
    await expect(check('systemd')).rejects.toThrow(/systemd mode, but the rootfs has no \/usr\/lib\/systemd\/systemd/);
  });

  it.skipIf(process.getuid?.() !== 0)('files owned by the (non-root) building user; system files not owned by root', async () => {
    const { chown } = await import('node:fs/promises');
    await put('usr/bin/kata-agent', '');
    await copyFile('/bin/busybox', join(root, 'usr/bin/kata-agent'));
    await chmod(join(root, 'usr/bin/kata-agent'), 0o755);
    await mkdir(join(root, 'sbin'));
    await symlink('/usr/bin/kata-agent', join(root, 'sbin/init'));
    await symlink('/usr/bin/kata-agent', join(root, 'init'));
    await put('etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
    await expect(check('agent-init', { buildingUid: 4242 })).resolves.toMatchObject({ init: { resolvesTo: '/usr/bin/kata-agent' } });
    await chown(join(root, 'etc/passwd'), 4242, 4242);
    await expect(check('agent-init', { buildingUid: 4242 })).rejects.toThrow(/owned by the building user \(uid 4242\), not root: \/etc\/passwd/);
    await chown(join(root, 'etc/passwd'), 0, 0);
    await chown(join(root, 'usr/bin/kata-agent'), 4242, 4242);
    await expect(withSafeRoot(root, (fs) => verifyRootfs(fs, { arch: 'x86_64', initMode: 'agent-init', asRoot: true }))).rejects.toThrow(
      /system files are not owned by root: \/usr\/bin\/kata-agent/,
    );
  });
});

describe('package lists, metadata, transforms', () => {
  it('parses dpkg status, apk db, rpm lines and clear bundles', () => {
    const status = [
      'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9',
      'Package: removed\nStatus: deinstall ok config-files\nVersion: 1',
      'Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b13\nDescription: GNU Bourne Again SHell\n more text',
    ].join('\n\n');
    expect(parseDpkgStatus(status)).toEqual(['bash=5.2.15-2+b13', 'libc6:amd64=2.36-9']);
    expect(parseApkInstalled('C:x\nP:musl\nV:1.2.5-r0\nA:x86_64\n\nP:busybox\nV:1.36.1-r29\n')).toEqual(['busybox=1.36.1-r29', 'musl=1.2.5-r0']);
    expect(parseNameVersionLines('systemd=255.4-1.fc40\n\ngpg-pubkey=abc-def\nnoise line\n')).toEqual(['gpg-pubkey=abc-def', 'systemd=255.4-1.fc40']);
    expect(clearBundles(['os-core', '.MoM'], 'NAME="Clear Linux OS"\nVERSION_ID=41830\n')).toEqual(['os-core=41830']);
  });

  it('metadata is deterministic and carries what the manifest needs', () => {
    const m = {
      toolVersion: '0.1.0',
      distro: 'debian',
      displayName: 'Debian',
      version: 'bookworm',
      arch: 'x86_64' as const,
      initMode: 'agent-init' as const,
      packages: { default: ['kmod'], extra: ['strace'] },
      agent: { path: '/usr/bin/kata-agent', sha256: 'ab'.repeat(32), source: 'default' },
      createdAt: 1700000000,
    };
    const text = renderMetadata(m);
    expect(text).toBe(renderMetadata(m));
    expect(text).toContain('rootfs-creation-time: 2023-11-14T22:13:20.000Z');
    expect(text).toMatch(/^ {2}agent-is-init-daemon: yes$/m);
    expect(text).toContain(`sha256: ${'ab'.repeat(32)}`);
  });

  it('chrony transforms are idempotent', () => {
    const once = chronyConf('server a\npeer b\nrtcsync');
    expect(chronyConf(once)).toBe(once);
    expect(once).toBe(
      '# server a\n# peer b\nrtcsync\nrefclock PHC /dev/ptp0 poll 3 dpoll -2 offset 0\n# Step the clock instead of slewing it when it is off by more than one second\nmakestep 1 -1\n',
    );
    const svc = chronyService('[Unit]\n[Service]\nExecStart=/usr/sbin/chronyd -u chrony $OPTIONS\n');
    expect(chronyService(svc)).toBe(svc);
  });
});

describe('inputs checked before building', () => {
  it('kernel modules: by directory name, or the one release inside', async () => {
    await mkdir(join(root, 'mods/lib/modules/6.1.62-kata/kernel'), { recursive: true });
    expect(await locateKernelModules(join(root, 'mods/lib/modules/6.1.62-kata'))).toEqual({
      dir: join(root, 'mods/lib/modules/6.1.62-kata'),
      kver: '6.1.62-kata',
    });
    expect(await locateKernelModules(join(root, 'mods'))).toMatchObject({ kver: '6.1.62-kata' });
    await expect(locateKernelModules(join(root, 'none'))).rejects.toMatchObject({ code: 'INPUT_NOT_FOUND' });
    await mkdir(join(root, 'mods/lib/modules/6.6.1'));
    await expect(locateKernelModules(join(root, 'mods'))).rejects.toThrow(/several kernels/);
  });

  it('output: refuses a non-empty directory that is not an osbuilder rootfs', async () => {
    await checkRootfsOutput(join(root, 'new'));
    await mkdir(join(root, 'empty'));
    await checkRootfsOutput(join(root, 'empty'));
    await put('home/file');
    await expect(checkRootfsOutput(join(root, 'home'))).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    await put('old/var/lib/osbuilder/osbuilder.yaml');
    await checkRootfsOutput(join(root, 'old'));
    await expect(checkRootfsOutput(join(root, 'missing/parent/x'))).rejects.toMatchObject({ code: 'OUTPUT_INVALID' });
  });

  it("unknown packages are reported in the tool's own words", () => {
    const err = new OsbuilderError(
      'COMMAND_FAILED',
      'docker run … failed (exit 1):\nI: running apt-get update...\nE: Unable to locate package nosuchpkg\nE: apt-get failed',
      '',
    );
    const e = packageNotFound(err, getDistro('debian'), 'bookworm', ['nosuchpkg']);
    expect(e).toMatchObject({ code: 'PACKAGE_NOT_FOUND' });
    expect(e!.message).toBe(
      'Debian bookworm has no package "nosuchpkg" (asked for with --extra-pkgs/EXTRA_PKGS); mmdebstrap said: E: Unable to locate package nosuchpkg',
    );
    expect(packageNotFound(new OsbuilderError('COMMAND_FAILED', 'No match for argument: foo', ''), getDistro('fedora'), '40', ['foo'])!.message).toContain(
      '"foo"',
    );
    expect(packageNotFound(new OsbuilderError('COMMAND_FAILED', 'network down', ''), getDistro('debian'), 'bookworm', [])).toBeUndefined();
  });
});
