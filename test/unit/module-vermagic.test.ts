/** Kernel modules given to a rootfs: each one's vermagic must name the kernel its directory is for. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { checkModulesVermagic, vermagicOf } from '../../rootfs-builder/module-vermagic.js';

/** The bytes of a module's .modinfo section between some ELF-ish noise, as the kernel's modpost writes it. */
function fakeModule(vermagic: string): Buffer {
  return Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01 noise vermagic=not-this-one '), Buffer.from(`\0license=GPL\0vermagic=${vermagic}\0name=osb_hello\0`)]);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'osb-vermagic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('vermagic', () => {
  it('reads the .modinfo entry, not a vermagic= that is not at an entry start', () => {
    expect(vermagicOf(fakeModule('6.1.192-kata SMP mod_unload modversions '))).toBe('6.1.192-kata SMP mod_unload modversions ');
    expect(vermagicOf(Buffer.from('no modinfo here vermagic=x'))).toBeUndefined();
  });

  it('accepts modules built for the directory kernel, plain, gzip and xz, in subdirectories', async () => {
    const kver = '6.1.192-kata';
    await mkdir(join(dir, 'extra/gpu'), { recursive: true });
    await writeFile(join(dir, 'extra/a.ko'), fakeModule(`${kver} SMP mod_unload `));
    await writeFile(join(dir, 'extra/gpu/b.ko.gz'), gzipSync(fakeModule(`${kver} SMP mod_unload `)));
    await writeFile(join(dir, 'c.ko.xz'), (await execa('xz', ['-c'], { input: fakeModule(`${kver} SMP `), encoding: 'buffer' })).stdout);
    await writeFile(join(dir, 'modules.dep'), 'extra/a.ko:\n');
    expect(await checkModulesVermagic(dir, kver)).toBe(3);
  });

  it('refuses a module built for another kernel, naming both releases and the vermagic', async () => {
    await mkdir(join(dir, 'extra'));
    await writeFile(join(dir, 'extra/ok.ko'), fakeModule('6.1.192-kata SMP '));
    await writeFile(join(dir, 'extra/osb_hello.ko'), fakeModule('6.1.0-13-amd64 SMP preempt mod_unload modversions '));
    await expect(checkModulesVermagic(dir, '6.1.192-kata')).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: `kernel modules in ${dir} do not match kernel 6.1.192-kata: extra/osb_hello.ko was built for kernel 6.1.0-13-amd64 (vermagic "6.1.0-13-amd64 SMP preempt mod_unload modversions"), not 6.1.192-kata`,
      hint: expect.stringContaining('linux-headers-6.1.192-kata'),
    });
  });

  it('refuses a .ko that is not a module; a 6.1.19 module is not one for 6.1.192', async () => {
    await writeFile(join(dir, 'junk.ko'), 'hello');
    await writeFile(join(dir, 'near.ko'), fakeModule('6.1.19-kata SMP '));
    const err = await checkModulesVermagic(dir, '6.1.192-kata').catch((e: Error) => e);
    expect((err as Error).message).toContain('junk.ko has no vermagic: it is not a kernel module');
    expect((err as Error).message).toContain('near.ko was built for kernel 6.1.19-kata');
  });
});
