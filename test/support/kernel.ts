/**
 * The default x86_64 guest kernel, built once through osbuilder's own kernel
 * stage (setup -> verify -> build) from Debian's linux-source-6.1 tarball and
 * cached under the test cache, keyed by the tarball's sha256, the fragments
 * hash and kata_config_version. The built tree is kept beside the images so
 * incremental checks (CLI build/install, bench) can reuse it.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256, sha256File } from '../../core/hash.js';
import { buildKernel, fragmentsHash, readConfigVersion, setupKernel } from '../../kernel/index.js';
import { cached } from './fixtures.js';

export const LINUX_SOURCE_TARBALL = process.env.OSBUILDER_TEST_KERNEL_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz';
export const LINUX_SOURCE_VERSION = process.env.OSBUILDER_TEST_KERNEL_VERSION ?? '6.1';

export interface GuestKernel {
  /** Compressed boot image (arch/x86/boot/bzImage). */
  bzImage: string;
  /** Uncompressed ELF kernel. */
  vmlinux: string;
  /** Kernel version from the tree's Makefile (e.g. 6.1.192). */
  version: string;
  /** The verified .config it was built with. */
  config: string;
  /** `uname -r` of the guest (e.g. 6.1.192-kata). */
  release: string;
  /** The built source tree (do not modify: other tests reuse it). */
  tree: string;
  /** kata_config_version used. */
  configVersion: string;
}

let tarballSha: Promise<string> | undefined;

/** sha256 of the source tarball (computed once per process). */
export function sourceSha256(): Promise<string> {
  tarballSha ??= sha256File(LINUX_SOURCE_TARBALL);
  return tarballSha;
}

/** The cache key: source + fragments + config version + requested version + arch. */
export async function guestKernelKey(): Promise<string> {
  return sha256(JSON.stringify({ source: await sourceSha256(), fragments: fragmentsHash(), cfg: readConfigVersion(), version: LINUX_SOURCE_VERSION, arch: 'x86_64' })).slice(0, 16);
}

let memo: Promise<GuestKernel> | undefined;

export function guestKernel(): Promise<GuestKernel> {
  memo ??= (async () => {
    const key = await guestKernelKey();
    const dir = await cached(`guest-kernel-x86_64-${key}`, async (tmp) => {
      const tree = join(tmp, 'tree');
      const sha = await sourceSha256();
      const setup = await setupKernel({ version: LINUX_SOURCE_VERSION, source: LINUX_SOURCE_TARBALL, sha256: sha, arch: 'x86_64', kernelDir: tree });
      const built = await buildKernel({ version: LINUX_SOURCE_VERSION, arch: 'x86_64', kernelDir: tree, engine: 'native' });
      await copyFile(built.vmlinuz!, join(tmp, 'bzImage'));
      await copyFile(built.vmlinux!, join(tmp, 'vmlinux'));
      await copyFile(setup.config, join(tmp, 'config'));
      await writeFile(join(tmp, 'kernel.json'), JSON.stringify({ version: setup.version, release: built.kernelRelease, configVersion: setup.configVersion }, null, 2) + '\n');
    });
    const meta = JSON.parse(await readFile(join(dir, 'kernel.json'), 'utf8')) as { version: string; release: string; configVersion: string };
    return { bzImage: join(dir, 'bzImage'), vmlinux: join(dir, 'vmlinux'), config: join(dir, 'config'), version: meta.version, release: meta.release, tree: join(dir, 'tree'), configVersion: meta.configVersion };
  })();
  memo.catch(() => {
    memo = undefined;
  });
  return memo;
}

export interface QemuRun {
  /** Everything the guest printed on the serial console. */
  output: string;
  /** The line that matched `until`, if any. */
  matched?: string;
  exitCode?: number;
}

/**
 * Boots QEMU (TCG: nested KVM hangs here) with the serial console on stdout,
 * until a line matches `until`, QEMU exits, or `timeoutMs` passes. QEMU is
 * always killed before this returns.
 */
export async function runQemu(args: string[], until: RegExp, timeoutMs = 5 * 60_000): Promise<QemuRun> {
  const { execa } = await import('execa');
  const child = execa('qemu-system-x86_64', ['-accel', 'tcg', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none', ...args], {
    reject: false,
    stdin: 'ignore',
    buffer: false,
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let output = '';
  let matched: string | undefined;
  let stderr = '';
  try {
    await new Promise<void>((resolvePromise) => {
      const timer = setTimeout(resolvePromise, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolvePromise();
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (!matched) {
          const line = output.split('\n').find((l) => until.test(l));
          if (line !== undefined) {
            matched = line.replace(/\r$/, '');
            done();
          }
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('exit', done);
    });
  } finally {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  }
  if (stderr.trim()) output += `\n[qemu stderr]\n${stderr}`;
  return { output, matched, exitCode: child.exitCode ?? undefined };
}
