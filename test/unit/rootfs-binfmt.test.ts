/** The binfmt handler of a cross build: mount, register from qemu-user-static's entry, or a clear error; on a temp tree standing in for /proc. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { binfmtName, ensureBinfmt, type BinfmtHost } from '../../rootfs-builder/binfmt.js';
import { checkForeignMmdebstrap } from '../../rootfs-builder/preflight.js';

const LINE = ':qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01:\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF';
let root: string;
let calls: string[];

/** A host whose mount creates `register` and whose register creates the handler, enabled; as root unless said. */
function host(over: Partial<BinfmtHost> = {}): BinfmtHost {
  return {
    dir: join(root, 'binfmt_misc'),
    confDir: join(root, 'binfmt.d'),
    isRoot: true,
    mount: async (dir) => {
      calls.push(`mount ${dir}`);
      await writeFile(join(dir, 'register'), '');
    },
    register: async (dir, line) => {
      calls.push(`register ${line}`);
      await writeFile(join(dir, line.split(':')[1]!), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: OCF\n');
    },
    ...over,
  };
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'osb-binfmt-'));
  await mkdir(join(root, 'binfmt_misc'));
  await mkdir(join(root, 'binfmt.d'));
  calls = [];
});
afterEach(() => rm(root, { recursive: true, force: true }));

describe('binfmt handler for a cross build', () => {
  it("mounts binfmt_misc, then registers qemu-user-static's entry", async () => {
    await writeFile(join(root, 'binfmt.d/qemu-aarch64.conf'), `${LINE}\n`);
    expect(await ensureBinfmt('aarch64', host())).toBe('registered');
    expect(calls).toEqual([`mount ${join(root, 'binfmt_misc')}`, `register ${LINE}`]);
  });

  it('leaves an enabled handler alone, and refuses a disabled one naming how to enable it', async () => {
    await writeFile(join(root, 'binfmt_misc/register'), '');
    await writeFile(join(root, 'binfmt_misc/qemu-aarch64'), 'enabled\nflags: F\n');
    expect(await ensureBinfmt('aarch64', host())).toBe('present');
    expect(calls).toEqual([]);
    await writeFile(join(root, 'binfmt_misc/qemu-s390x'), 'disabled\n');
    await expect(ensureBinfmt('s390x', host())).rejects.toMatchObject({
      code: 'UNSUPPORTED_ARCH',
      message: 'the binfmt handler qemu-s390x is registered but disabled',
      hint: `enable it: echo 1 > ${join(root, 'binfmt_misc/qemu-s390x')}`,
    });
  });

  it('without qemu-user-static: TOOL_MISSING naming the package, nothing registered', async () => {
    await expect(ensureBinfmt('aarch64', host())).rejects.toMatchObject({
      code: 'TOOL_MISSING',
      hint: expect.stringMatching(/^apt-get install qemu-user-static/),
    });
    expect(calls.filter((c) => c.startsWith('register'))).toEqual([]);
  });

  it('not root: the exact command to run, for the mount and for the registration', async () => {
    await expect(ensureBinfmt('aarch64', host({ isRoot: false }))).rejects.toMatchObject({
      hint: `run as root: mount -t binfmt_misc binfmt_misc ${join(root, 'binfmt_misc')}`,
    });
    await writeFile(join(root, 'binfmt_misc/register'), '');
    await writeFile(join(root, 'binfmt.d/qemu-aarch64.conf'), `${LINE}\n`);
    await expect(ensureBinfmt('aarch64', host({ isRoot: false }))).rejects.toMatchObject({
      message: 'no aarch64 binfmt handler is registered (qemu-aarch64)',
      hint: `run as root: cat ${join(root, 'binfmt.d/qemu-aarch64.conf')} > ${join(root, 'binfmt_misc/register')}`,
    });
    expect(calls).toEqual([]);
  });

  it('a registration the kernel did not take is an error, not a silent pass', async () => {
    await writeFile(join(root, 'binfmt.d/qemu-aarch64.conf'), `${LINE}\n`);
    await expect(ensureBinfmt('aarch64', host({ register: async () => undefined }))).rejects.toThrow(/did not create .*qemu-aarch64/);
  });

  it('names handlers as qemu-user-static does', () => {
    expect(['x86_64', 'aarch64', 'ppc64le', 's390x'].map((a) => binfmtName(a as never))).toEqual(['qemu-x86_64', 'qemu-aarch64', 'qemu-ppc64le', 'qemu-s390x']);
  });
});

describe('checkForeignMmdebstrap: mmdebstrap bootstraps a foreign arch only with arch-test', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('the host arch needs nothing; a foreign one without arch-test on PATH is TOOL_MISSING naming the package', async () => {
    process.env.PATH = root;
    await expect(checkForeignMmdebstrap('x86_64', 'x86_64')).resolves.toBeUndefined();
    await expect(checkForeignMmdebstrap('aarch64', 'x86_64')).rejects.toMatchObject({
      code: 'TOOL_MISSING',
      message: 'arch-test is not installed: mmdebstrap needs it to bootstrap aarch64 on this x86_64 host',
      hint: expect.stringContaining('apt-get install arch-test'),
    });
    await writeFile(join(root, 'arch-test'), '#!/bin/sh\n', { mode: 0o755 });
    await expect(checkForeignMmdebstrap('aarch64', 'x86_64')).resolves.toBeUndefined();
  });
});
