/**
 * boot() leaves no run dir behind when it fails: neither on bad input (found
 * before the dir exists) nor when QEMU dies at once. A shell script stands in
 * for QEMU; TMPDIR points boot at a scratch root so only its dirs are checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boot } from '../../runtime/boot.js';
import { hostGuestArch } from '../../runtime/host.js';
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

/** A configuration booting `kernel` and a one-byte initrd with a "QEMU" that reports a version, then fails to start. */
async function config(name: string, kernel: string): Promise<string> {
  const qemu = join(scratch, `${name}-qemu`);
  await writeFile(qemu, '#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 8.2.0"; exit 0; }\necho "qemu: could not load kernel" >&2\nexit 1\n');
  await chmod(qemu, 0o755);
  const initrd = join(scratch, `${name}.initrd`);
  await writeFile(initrd, 'x');
  const file = join(scratch, `${name}.toml`);
  await writeFile(file, `[hypervisor.qemu]\npath = "${qemu}"\nkernel = "${kernel}"\ninitrd = "${initrd}"\nshared_fs = "none"\nentropy_source = "/dev/urandom"\n`);
  return file;
}

const runDirs = async () => (await readdir(tmpRoot)).filter((n) => n.startsWith('osb-vm-'));

describe('boot cleans up on failure', () => {
  it('a kernel that does not exist fails before anything is made', async () => {
    const err = await failure(boot({ arch: hostGuestArch(), configFile: await config('nokernel', join(scratch, 'missing-vmlinuz')), accel: 'tcg', channel: 'serial', env: {} }));
    expect(err.code).toBe('INPUT_NOT_FOUND');
    expect(err.message).toContain('missing-vmlinuz');
    expect(await runDirs()).toEqual([]);
  });

  it('QEMU failing to start removes the run dir boot made', async () => {
    const kernel = join(scratch, 'vmlinuz');
    await writeFile(kernel, 'x');
    const err = await failure(boot({ arch: hostGuestArch(), configFile: await config('qemufails', kernel), accel: 'tcg', channel: 'serial', timeoutSec: 600, env: {} }));
    expect(err.code).toBe('BOOT_FAILED');
    expect(err.message).toContain('could not load kernel');
    expect(await runDirs()).toEqual([]);
  });
});
