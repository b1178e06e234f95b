/**
 * The qemu-user binfmt handler a cross build runs the guest's binaries with
 * (mmdebstrap's maintainer scripts, a `--platform linux/arm64` builder):
 * binfmt_misc mounted when it is not, the handler registered from
 * qemu-user-static's own binfmt.d entry when it is missing. Both need root;
 * without it, or without the package, a clear error says what to run.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { run } from '../core/exec.js';
import type { Arch } from '../core/arch.js';

export const BINFMT_MISC = '/proc/sys/fs/binfmt_misc';
export const BINFMT_D = '/usr/lib/binfmt.d';

/** Where to look and how to act: the real system by default, a temp tree in unit tests. */
export interface BinfmtHost {
  dir: string;
  confDir: string;
  isRoot: boolean;
  mount: (dir: string) => Promise<void>;
  /** Writes one handler line to <dir>/register. */
  register: (dir: string, line: string) => Promise<void>;
}

export const realBinfmtHost = (): BinfmtHost => ({
  dir: BINFMT_MISC,
  confDir: BINFMT_D,
  isRoot: process.getuid?.() === 0,
  mount: (dir) => run('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir]).then(() => undefined),
  register: (dir, line) => writeFile(join(dir, 'register'), line),
});

/** qemu-user-static's handler name for a guest arch (qemu-aarch64, qemu-ppc64le, qemu-s390x, qemu-x86_64). */
export const binfmtName = (arch: Arch) => `qemu-${arch}`;

const exists = async (p: string) => (await stat(p).catch(() => undefined)) !== undefined;

/** Mounts binfmt_misc (root) unless it is; else the error naming the command. */
async function ensureMounted(host: BinfmtHost): Promise<void> {
  if (await exists(join(host.dir, 'register'))) return;
  const cmd = `mount -t binfmt_misc binfmt_misc ${host.dir}`;
  if (!host.isRoot)
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `binfmt_misc is not mounted at ${host.dir}: a cross build cannot run the guest's binaries`,
      `run as root: ${cmd}`,
    );
  await host.mount(host.dir);
}

/** An existing handler must be enabled. */
async function checkHandler(path: string, name: string): Promise<void> {
  const state = (await readFile(path, 'utf8')).split('\n')[0];
  if (state !== 'enabled') throw new OsbuilderError('UNSUPPORTED_ARCH', `the binfmt handler ${name} is registered but ${state}`, `enable it: echo 1 > ${path}`);
}

/** The handler for `arch`, present and enabled when this returns; registered from qemu-user-static's binfmt.d entry if missing. */
export async function ensureBinfmt(arch: Arch, host: BinfmtHost = realBinfmtHost()): Promise<'present' | 'registered'> {
  const name = binfmtName(arch);
  await ensureMounted(host);
  const handler = join(host.dir, name);
  if (await exists(handler)) {
    await checkHandler(handler, name);
    return 'present';
  }
  const conf = join(host.confDir, `${name}.conf`);
  const line = await readFile(conf, 'utf8').catch(() => undefined);
  if (line === undefined)
    throw new OsbuilderError(
      'TOOL_MISSING',
      `no ${arch} binfmt handler is registered and qemu-user-static's ${conf} is missing`,
      'apt-get install qemu-user-static (scripts/setup-host.sh does), or build on a matching host',
    );
  const register = `cat ${conf} > ${join(host.dir, 'register')}`;
  if (!host.isRoot) throw new OsbuilderError('UNSUPPORTED_ARCH', `no ${arch} binfmt handler is registered (${name})`, `run as root: ${register}`);
  await host.register(host.dir, line.trim());
  if (!(await exists(handler)))
    throw new OsbuilderError('UNSUPPORTED_ARCH', `registering ${conf} did not create ${handler}`, `check the kernel log, then: ${register}`);
  return 'registered';
}
