/**
 * boot() leaves nothing behind when it fails: neither on bad input (found
 * before anything exists), nor when the sandbox's shared directory cannot be
 * made (after the run dir exists), nor when QEMU dies at once. A shell script
 * stands in for QEMU and records its argv; TMPDIR points boot at a scratch
 * root so only its run dirs are checked, and each boot has its own name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boot } from '../../runtime/boot.js';
import { hostGuestArch } from '../../runtime/host.js';
import { sharedBase } from '../../runtime/shared-fs.js';
import { failure } from '../support/errors.js';

let scratch: string;
let tmpRoot: string;
const savedTmpdir = process.env.TMPDIR;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'osb-boot-cleanup-'));
  tmpRoot = join(scratch, 'tmp');
  await mkdir(tmpRoot);
  process.env.TMPDIR = tmpRoot;
});

afterAll(async () => {
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  await rm(scratch, { recursive: true, force: true });
});

/**
 * A configuration booting `kernel` and a one-byte initrd with a "QEMU" that
 * reports a version, then writes its argv to `<name>.argv` and fails to start.
 */
async function config(name: string, kernel: string, sharedFs: 'none' | 'virtio-9p' = 'none'): Promise<string> {
  const qemu = join(scratch, `${name}-qemu`);
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 8.2.0"; exit 0; }\nprintf '%s\\n' "$@" > ${join(scratch, `${name}.argv`)}\necho "qemu: could not load kernel" >&2\nexit 1\n`,
  );
  await chmod(qemu, 0o755);
  const initrd = join(scratch, `${name}.initrd`);
  await writeFile(initrd, 'x');
  const file = join(scratch, `${name}.toml`);
  await writeFile(
    file,
    `[hypervisor.qemu]\npath = "${qemu}"\nkernel = "${kernel}"\ninitrd = "${initrd}"\nshared_fs = "${sharedFs}"\nentropy_source = "/dev/urandom"\n`,
  );
  return file;
}

async function aKernel(): Promise<string> {
  const kernel = join(scratch, 'vmlinuz');
  await writeFile(kernel, 'x');
  return kernel;
}

/** The run dir QEMU was given (its QMP socket's directory), from the fake QEMU's argv. */
async function qemuRunDir(name: string): Promise<string> {
  const argv = (await readFile(join(scratch, `${name}.argv`), 'utf8')).split('\n');
  const qmp = argv[argv.indexOf('-qmp') + 1] ?? '';
  const dir = /^unix:(.*)\/qmp\.sock,/.exec(qmp)?.[1];
  expect(dir, qmp).toMatch(new RegExp(`^${tmpRoot}/osb-vm-`));
  return dir!;
}

const gone = async (p: string) => (await stat(p).catch(() => undefined)) === undefined;
const unique = (what: string) => `osb-cleanup-${what}-${process.pid}-${Date.now().toString(36)}`;
const runDirs = async () => (await readdir(tmpRoot)).filter((n) => n.startsWith('osb-vm-'));

describe('boot cleans up on failure', () => {
  it('a kernel that does not exist fails before anything is made', async () => {
    const err = await failure(
      boot({ arch: hostGuestArch(), configFile: await config('nokernel', join(scratch, 'missing-vmlinuz')), accel: 'tcg', channel: 'serial', env: {} }),
    );
    expect(err.code).toBe('INPUT_NOT_FOUND');
    expect(err.message).toContain('missing-vmlinuz');
    expect(await runDirs()).toEqual([]);
  });

  it('QEMU failing to start removes the run dir it was given', async () => {
    const name = unique('qemu');
    const err = await failure(
      boot({ arch: hostGuestArch(), configFile: await config('qemufails', await aKernel()), accel: 'tcg', channel: 'serial', timeoutSec: 600, env: {}, name }),
    );
    expect(err.code).toBe('BOOT_FAILED');
    expect(err.message).toContain('could not load kernel');
    expect(await gone(await qemuRunDir('qemufails'))).toBe(true);
    expect(await runDirs()).toEqual([]);
  });

  it('a sandbox directory that exists already fails after the run dir was made: it is removed, the other directory kept', async () => {
    const name = unique('taken');
    const taken = join(await sharedBase(), name);
    await mkdir(taken, { recursive: true });
    try {
      const err = await failure(
        boot({ arch: hostGuestArch(), configFile: await config('taken', await aKernel(), 'virtio-9p'), accel: 'tcg', channel: 'serial', env: {}, name }),
      );
      expect(err.code).toBe('OUTPUT_EXISTS');
      expect(err.message).toContain(taken);
      expect(await runDirs()).toEqual([]);
      expect(await gone(taken)).toBe(false);
    } finally {
      await rm(taken, { recursive: true, force: true });
    }
  });

  it('QEMU failing to start with a shared directory removes both', async () => {
    const name = unique('shared');
    const err = await failure(
      boot({
        arch: hostGuestArch(),
        configFile: await config('sharedfails', await aKernel(), 'virtio-9p'),
        accel: 'tcg',
        channel: 'serial',
        timeoutSec: 600,
        env: {},
        name,
      }),
    );
    expect(err.code).toBe('BOOT_FAILED');
    const argv = await readFile(join(scratch, 'sharedfails.argv'), 'utf8');
    const sandboxDir = join(await sharedBase(), name);
    expect(argv).toContain(`${sandboxDir}/shared`);
    expect(await gone(sandboxDir)).toBe(true);
    expect(await gone(await qemuRunDir('sharedfails'))).toBe(true);
    expect(await runDirs()).toEqual([]);
  });
});
