/**
 * The kernel-devel tarball the NVIDIA driver builds against: the file selection
 * of the kernel's own Debian headers package (Makefiles, include/, scripts/,
 * the arch's include and scripts dirs, objtool, Module.symvers, .config), packed
 * reproducibly under linux-headers-<release>/.
 */
import { mkdtemp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tar from 'tar';
import { headerFiles, kernelRelease, writeHeadersTarball } from '../../kernel/headers.js';

const PACKED = [
  '.config',
  'Makefile',
  'Module.symvers',
  'arch/x86/Makefile',
  'arch/x86/Makefile_32.cpu',
  'arch/x86/include/asm/io.h',
  'arch/x86/include/generated/asm/syscalls_64.h',
  'arch/x86/tools/scripts/gen.sh',
  'arch/x86/xen/Platform',
  'include/config/kernel.release',
  'include/linux/module.h',
  'include/linux/mod-link.h',
  'scripts/Makefile.build',
  'scripts/basic/fixdep',
  'tools/objtool/objtool',
];

const LEFT_OUT = [
  'Kconfig',
  'arch/x86/Kconfig',
  'arch/x86/boot/bzImage',
  'arch/x86/kernel/setup.c',
  'fs/ext4/super.c',
  'vmlinux',
  'tools/objtool/check.c',
  '.osbuilder/state.json',
  'include/.osbuilder/stray',
];

async function fakeTree(files: string[]): Promise<string> {
  const tree = await mkdtemp(join(tmpdir(), 'osb-kheaders-'));
  for (const f of files) {
    if (f === 'include/linux/mod-link.h') continue;
    await mkdir(dirname(join(tree, f)), { recursive: true });
    await writeFile(join(tree, f), f === 'include/config/kernel.release' ? '6.1.1-kata\n' : `content of ${f}\n`);
  }
  if (files.includes('include/linux/mod-link.h')) await symlink('module.h', join(tree, 'include/linux/mod-link.h'));
  return tree;
}

async function entries(tarball: string): Promise<Array<{ path: string; uid?: number; gid?: number; mtime?: Date; type: string; linkpath?: string }>> {
  const out: Array<{ path: string; uid?: number; gid?: number; mtime?: Date; type: string; linkpath?: string }> = [];
  await tar.t({
    file: tarball,
    onReadEntry: (e) => void out.push({ path: e.path, uid: e.uid, gid: e.gid, mtime: e.mtime, type: e.type, linkpath: e.linkpath }),
  });
  return out;
}

describe('headerFiles', () => {
  it("selects what Debian's linux-headers package ships, sorted, and nothing else", async () => {
    const tree = await fakeTree([...PACKED, ...LEFT_OUT]);
    expect(await headerFiles(tree, 'x86_64')).toEqual([...PACKED].sort());
  });

  it('has no Module.symvers when the modules were not built (--headers-only)', async () => {
    const tree = await fakeTree(PACKED.filter((f) => f !== 'Module.symvers'));
    expect(await headerFiles(tree, 'x86_64')).not.toContain('Module.symvers');
  });
});

describe('writeHeadersTarball', () => {
  it('packs linux-headers-<release>/… with owner 0, a fixed mtime and links kept, byte for byte reproducibly', async () => {
    const tree = await fakeTree(PACKED);
    const release = await kernelRelease(tree);
    expect(release).toBe('6.1.1-kata');
    const mtime = new Date(1700000000 * 1000);
    const a = join(tree, '..', `${tree.split('/').pop()}-a.tar.gz`);
    const b = join(tree, '..', `${tree.split('/').pop()}-b.tar.gz`);
    expect(await writeHeadersTarball(tree, 'x86_64', release, a, mtime)).toEqual({ files: PACKED.length, hasSymvers: true });
    await writeHeadersTarball(tree, 'x86_64', release, b, mtime);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    const list = await entries(a);
    expect(list.map((e) => e.path)).toEqual([...PACKED].sort().map((f) => `linux-headers-6.1.1-kata/${f}`));
    for (const e of list) {
      expect(e.uid ?? 0, e.path).toBe(0);
      expect(e.gid ?? 0, e.path).toBe(0);
      expect(e.mtime?.getTime(), e.path).toBe(mtime.getTime());
    }
    expect(list.find((e) => e.path.endsWith('/mod-link.h'))).toMatchObject({ type: 'SymbolicLink', linkpath: 'module.h' });
  });

  it('refuses a tree where modules_prepare has not run, and a tree without kernel.release', async () => {
    const unprepared = await fakeTree(PACKED.filter((f) => f !== 'scripts/basic/fixdep'));
    await expect(writeHeadersTarball(unprepared, 'x86_64', '6.1.1-kata', join(unprepared, 'h.tar.gz'), new Date(0))).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
    });
    const noConfig = await fakeTree(PACKED.filter((f) => f !== '.config'));
    await expect(writeHeadersTarball(noConfig, 'x86_64', '6.1.1-kata', join(noConfig, 'h.tar.gz'), new Date(0))).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
    });
    const noRelease = await fakeTree(PACKED.filter((f) => f !== 'include/config/kernel.release'));
    await expect(kernelRelease(noRelease)).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
  });
});
