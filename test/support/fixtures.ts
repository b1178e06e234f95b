/**
 * Real inputs for integration tests, built once and cached between runs under
 * $OSBUILDER_TEST_CACHE (default ~/.cache/osbuilder-test). Each fixture is
 * built into a temp path and renamed, so an interrupted build is never reused.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat, symlink, writeFile, copyFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const testCache = process.env.OSBUILDER_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'osbuilder-test');
export const debianMirror = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** Builds `name` under the cache once; `build` fills a fresh temp dir. */
export async function cached(name: string, build: (dir: string) => Promise<void>): Promise<string> {
  const final = join(testCache, name);
  if (await exists(final)) return final;
  await mkdir(testCache, { recursive: true });
  const tmp = `${final}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return final;
}

export async function makeTempDir(prefix = 'osb-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

const BUSYBOX_APPLETS = ['sh', 'mount', 'umount', 'cat', 'echo', 'ls', 'mkdir', 'poweroff', 'reboot', 'sleep', 'uname', 'grep', 'dmesg', 'halt'];

export interface BusyboxOptions {
  /** Script installed as /init (and /sbin/init) — e.g. print a marker and power off. */
  init?: string;
  /** Placeholder or real agent for /usr/bin/kata-agent. */
  agent?: string | { copyFrom: string };
}

/**
 * A minimal busybox-static root filesystem written into `dir` (not cached:
 * it takes milliseconds). Layout: /bin/busybox + applet links, /init,
 * /sbin/init -> /init, the usual empty dirs, a device-free /dev.
 */
export async function makeBusyboxRootfs(dir: string, opts: BusyboxOptions = {}): Promise<string> {
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'etc', 'usr/bin', 'root', 'var']) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(dir, 'bin', applet));
  const init = opts.init ?? '#!/bin/sh\necho OSBUILDER-INIT-OK\npoweroff -f\n';
  await writeFile(join(dir, 'init'), init, { mode: 0o755 });
  await symlink('../init', join(dir, 'sbin/init'));
  await writeFile(join(dir, 'etc/os-release'), 'NAME="osbuilder busybox test"\nID=busybox\nPRETTY_NAME="osbuilder busybox test"\n');
  if (typeof opts.agent === 'object') {
    await copyFile(opts.agent.copyFrom, join(dir, 'usr/bin/kata-agent'));
    await chmod(join(dir, 'usr/bin/kata-agent'), 0o755);
  } else {
    await writeFile(join(dir, 'usr/bin/kata-agent'), opts.agent ?? '#!/bin/sh\nexec sleep 3600\n', { mode: 0o755 });
  }
  return dir;
}

/** A Debian bookworm minbase tree made with mmdebstrap (root mode, real owners), cached. */
export async function debianMinbaseRootfs(): Promise<string> {
  return cached('debian-minbase-bookworm', async (dir) => {
    await execa('mmdebstrap', ['--variant=minbase', '--mode=root', '--skip=cleanup/apt/lists', 'bookworm', dir, debianMirror], { stdio: 'inherit' });
  });
}

/** The tools the kernel workload tests run in their containers. */
const WORKLOAD_PACKAGES = ['iptables', 'nftables', 'iproute2', 'netcat-openbsd', 'keyutils', 'inotify-tools', 'fatrace', 'attr'];

/** A Debian bookworm minbase tree with WORKLOAD_PACKAGES (a container rootfs for kernel-workloads), cached. */
export async function workloadRootfs(): Promise<string> {
  const key = createHash('sha256').update(WORKLOAD_PACKAGES.join(' ')).digest('hex').slice(0, 8);
  return cached(`debian-workloads-bookworm-${key}`, async (dir) => {
    await execa('mmdebstrap', ['--variant=minbase', '--mode=root', `--include=${WORKLOAD_PACKAGES.join(',')}`, 'bookworm', dir, debianMirror], {
      stdio: 'inherit',
    });
  });
}

/**
 * Debian's stock cloud kernel (linux-image-cloud-amd64's dependency), extracted
 * from its .deb without installing it. Returns the vmlinuz path.
 */
export async function debianCloudKernel(): Promise<string> {
  const dir = await cached('debian-cloud-kernel', async (tmp) => {
    const dl = join(tmp, 'dl');
    await mkdir(dl);
    const dep = await execa('apt-cache', ['depends', 'linux-image-cloud-amd64']);
    const pkg = /Depends: (linux-image-[^\s]+-cloud-amd64)/.exec(String(dep.stdout))?.[1];
    if (!pkg) throw new Error(`cannot resolve linux-image-cloud-amd64 (apt-get update first):\n${dep.stdout}`);
    await execa('apt-get', ['download', pkg], { cwd: dl });
    const debs = await readdir(dl);
    await execa('dpkg-deb', ['-x', join(dl, debs[0]!), join(tmp, 'root')]);
    await rm(dl, { recursive: true });
  });
  const boot = join(dir, 'root/boot');
  const vmlinuz = (await readdir(boot)).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`no vmlinuz in ${boot}`);
  return join(boot, vmlinuz);
}
