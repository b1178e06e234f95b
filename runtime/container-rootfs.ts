/**
 * The container `osbuilder boot` runs when given neither a bundle nor a
 * rootfs: the host's static busybox (Debian's busybox-static), its applets as
 * symlinks, a passwd, and an /etc/os-release of its own (so a container can
 * be told from the guest it runs in). Made once per busybox binary and kept
 * in the build cache; busybox itself is a verified cache file, hard-linked
 * into the tree. /guest/os-release, /guest/proc and /guest/sys are mount points for the
 * guest's own paths (the boot test binds the guest's /etc/os-release there).
 */
import { chmod, copyFile, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { start } from '../core/exec.js';
import { BuildCache, cacheKey, type CacheInputs } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { TOOL_VERSION } from '../core/version.js';
import { readElf } from '../rootfs-builder/index.js';
import type { GuestArch } from './config.js';
import { hostGuestArch } from './host.js';
import { foreignBusybox, qemuUser } from './foreign-busybox.js';

export const HOST_BUSYBOX = '/bin/busybox';
export const CONTAINER_OS_ID = 'osbuilder-container';
/** Bumped when makeTree changes: older trees in the cache are not used. */
const LAYOUT = 3;

export function containerOsRelease(busyboxVersion: string): string {
  return [
    'NAME="osbuilder container"',
    `ID=${CONTAINER_OS_ID}`,
    `VERSION_ID="${busyboxVersion}"`,
    `PRETTY_NAME="osbuilder busybox container (BusyBox ${busyboxVersion})"`,
    '',
  ].join('\n');
}

export interface ContainerRootfs {
  /** The tree to share as the container's rootfs (read-only). */
  path: string;
  osRelease: string;
  busyboxSha256: string;
}

/** argv running busybox here: directly, or through qemu-user for another arch's. */
type Runner = (busybox: string, args: string[]) => [string, string[]];

async function checkBusybox(path: string, exec: Runner): Promise<string> {
  const elf = await readElf(path).catch(() => undefined);
  if (!elf)
    throw new OsbuilderError(
      'TOOL_MISSING',
      `${path} is missing or not an ELF binary: the default container is made from the host's busybox`,
      'apt-get install busybox-static, or give --rootfs / --bundle',
    );
  if (elf.interpreter)
    throw new OsbuilderError(
      'TOOL_MISSING',
      `${path} is dynamically linked: the default container needs a static busybox`,
      'apt-get install busybox-static, or give --rootfs / --bundle',
    );
  const v = await start(...exec(path, []), { reject: false });
  return /BusyBox v([\w.-]+)/.exec(String(v.stdout))?.[1] ?? 'unknown';
}

async function makeTree(root: string, busybox: string, version: string, exec: Runner): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'root', 'guest/proc', 'guest/sys'])
    await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
  await link(busybox, join(root, 'bin/busybox'));
  const applets = String((await start(...exec(busybox, ['--list-full']))).stdout)
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => /^(usr\/)?s?bin\/[\w.[\]-]+$/.test(a) && a !== 'bin/busybox');
  for (const a of applets) await symlink('/bin/busybox', join(root, a));
  await writeFile(join(root, 'etc/os-release'), containerOsRelease(version));
  await writeFile(join(root, 'guest/os-release'), '');
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/**
 * The default container's rootfs for a guest of `arch`, from the cache; made when missing from the
 * host's busybox, or for another arch from Debian's busybox-static:<arch> (run through qemu-user).
 */
export async function defaultContainerRootfs(opts: { arch?: GuestArch; cache?: BuildCache } = {}): Promise<ContainerRootfs> {
  const cache = opts.cache ?? new BuildCache();
  const foreign = opts.arch !== undefined && opts.arch !== hostGuestArch() ? opts.arch : undefined;
  const busybox = foreign ? await foreignBusybox(foreign, cache) : HOST_BUSYBOX;
  const exec: Runner = (b, args) => (foreign ? [qemuUser(foreign), [b, ...args]] : [b, args]);
  const version = await checkBusybox(busybox, exec);
  const sha = await sha256File(busybox);
  const inputs: CacheInputs = { tool: TOOL_VERSION, layout: LAYOUT, busybox: sha, version };
  const key = cacheKey(inputs);
  const { entry } = await cache.obtain('container-rootfs', key, inputs, async (dir) => {
    await copyFile(busybox, join(dir, 'busybox'));
    await chmod(join(dir, 'busybox'), 0o755);
    await makeTree(join(dir, 'rootfs'), join(dir, 'busybox'), version, exec);
    return { version };
  });
  return { path: join(entry.dir, 'rootfs'), osRelease: containerOsRelease(entry.meta.version), busyboxSha256: sha };
}
