/**
 * Debian's busybox-static for another arch (the default container of an
 * aarch64 guest on an x86_64 host): fetched with `apt-get download` (the
 * host's apt must list that arch: `dpkg --add-architecture`), unpacked with
 * dpkg-deb, kept in the build cache by package version. It is run through
 * qemu-user (qemu-<arch>-static) to list its applets.
 */
import { mkdtemp, rm, copyFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildCache, cacheKey } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool, run, start } from '../core/exec.js';
import { ARCH_FACTS } from '../core/arch.js';
import type { GuestArch } from './config.js';

/** The qemu-user binary that runs `arch` programs here (Debian's qemu-user-static). */
export function qemuUser(arch: GuestArch): string {
  return ARCH_FACTS[arch].qemuUser;
}

async function candidateVersion(pkg: string): Promise<string> {
  const r = await start('apt-cache', ['policy', pkg], { reject: false });
  const v = /Candidate:\s*(\S+)/.exec(String(r.stdout))?.[1];
  if (r.exitCode !== 0 || !v || v === '(none)') {
    const arch = pkg.split(':')[1]!;
    throw new OsbuilderError(
      'TOOL_MISSING',
      `apt knows no ${pkg}: the default container for this guest arch is made from it`,
      `dpkg --add-architecture ${arch} && apt-get update (scripts/setup-host.sh does), or give --rootfs / --bundle`,
    );
  }
  return v;
}

/** Path of busybox-static's /bin/busybox for `arch`, from the cache or fetched. */
export async function foreignBusybox(arch: GuestArch, cache = new BuildCache()): Promise<string> {
  if (!(await haveTool(qemuUser(arch)))) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      `${qemuUser(arch)} is not installed: it runs the ${arch} busybox that makes the default container`,
      'apt-get install qemu-user-static, or give --rootfs / --bundle',
    );
  }
  const pkg = `busybox-static:${ARCH_FACTS[arch].debArch}`;
  const version = await candidateVersion(pkg);
  const inputs = { pkg, version };
  const key = cacheKey(inputs);
  const { entry } = await cache.obtain('busybox-static', key, inputs, async (dir) => {
    const work = await mkdtemp(join(tmpdir(), 'osb-busybox-'));
    try {
      await run('apt-get', ['download', `${pkg}=${version}`], { cwd: work, hint: 'check that the Debian archive is reachable' });
      const deb = (await start('sh', ['-c', 'ls *.deb', 'sh'], { cwd: work })).stdout.trim();
      await run('dpkg-deb', ['-x', join(work, deb), join(work, 'x')], { hint: `the downloaded ${deb} is damaged: rerun` });
      await copyFile(join(work, 'x/bin/busybox'), join(dir, 'busybox'));
      await chmod(join(dir, 'busybox'), 0o755);
      return { version };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
  return join(entry.dir, 'busybox');
}
