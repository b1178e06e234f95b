/**
 * Build and install through the CLI. The cold build happens once in
 * guestKernel() (our stage, cached by source sha256 + fragments hash); here the
 * CLI rebuilds that tree (make finds it up to date) and installs it with
 * Kata's names. The GPU variant is exercised for real but cheaply:
 * setup -g nvidia, `build --headers-only` (modules_prepare + headers tarball),
 * and an out-of-tree module compiled against that tarball.
 */
import { execa } from 'execa';
import { lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import type { BuildResult as KernelBuildResult, KernelInstallResult, SetupResult } from '../../kernel/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { guestKernel, KERNEL_SDE, LINUX_SOURCE_TARBALL, sourceSha256, type GuestKernel } from '../support/kernel.js';
import { sha256File } from '../../core/hash.js';

let kernel: GuestKernel;
let work: string;

beforeAll(async () => {
  kernel = await guestKernel();
  work = await makeTempDir('osb-kernel-build-');
});

describe('default kernel build + install (CLI)', () => {
  it('guestKernel() produced a bzImage and an ELF vmlinux from the verified config', async () => {
    const bz = await readFile(kernel.bzImage);
    expect(bz.subarray(0x202, 0x206).toString('latin1')).toBe('HdrS'); // x86 boot protocol header
    const elf = await readFile(kernel.vmlinux);
    expect(elf.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    expect(elf[4]).toBe(2); // ELFCLASS64
    const config = await readFile(kernel.config, 'utf8');
    expect(config).toContain('CONFIG_FS_DAX=y');
    expect(kernel.version).toMatch(/^6\.1\.\d+$/);
    const state = JSON.parse(await readFile(join(kernel.tree, '.osbuilder/state.json'), 'utf8'));
    expect(state.build.vmlinuz.sha256).toBe(await sha256File(kernel.bzImage));
    expect(state.source.sha256).toBe(await sourceSha256());
  });

  it('kernel build on the built tree runs make and keeps the same images', async () => {
    // The epoch the tree was built with: make then has nothing to do.
    const r = await runCli<KernelBuildResult>(['kernel', 'build', '-v', '6.1', '-a', 'x86_64', '-k', kernel.tree, '--make-jobs', '2', '--json'], {
      env: { SOURCE_DATE_EPOCH: KERNEL_SDE },
      timeout: 20 * 60_000,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({
      kernelRelease: kernel.release,
      engine: 'native',
      jobs: 2,
      vmlinuz: join(kernel.tree, 'arch/x86/boot/bzImage'),
      vmlinux: join(kernel.tree, 'vmlinux'),
    });
    expect(await sha256File(r.json!.vmlinuz!)).toBe(await sha256File(kernel.bzImage));
  });

  it('kernel install writes Kata names and symlinks, is idempotent, and refuses a different file without -f', async () => {
    const prefix = join(work, 'prefix');
    const r = await runCli<KernelInstallResult>(['kernel', 'install', '-v', '6.1', '-k', kernel.tree, '--prefix', prefix, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const dir = join(prefix, 'usr/share/kata-containers');
    const v = `${kernel.version}-${kernel.configVersion}`;
    expect((await readdir(dir)).sort()).toEqual([`config-${v}`, `vmlinux-${v}`, 'vmlinux.container', `vmlinuz-${v}`, 'vmlinuz.container'].sort());
    expect(await readlink(join(dir, 'vmlinuz.container'))).toBe(`vmlinuz-${v}`);
    expect(await readlink(join(dir, 'vmlinux.container'))).toBe(`vmlinux-${v}`);
    expect(await sha256File(join(dir, `vmlinuz-${v}`))).toBe(await sha256File(kernel.bzImage));
    expect(await sha256File(join(dir, `vmlinux-${v}`))).toBe(await sha256File(kernel.vmlinux));
    expect(await readFile(join(dir, `config-${v}`), 'utf8')).toBe(await readFile(kernel.config, 'utf8'));
    expect(r.json!.installed.map((i) => i.status)).toEqual(['written', 'written', 'written', 'written', 'written']);

    const again = await runCli<KernelInstallResult>(['kernel', 'install', '-v', '6.1', '-k', kernel.tree, '--prefix', prefix, '--json']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json!.installed.every((i) => i.status === 'unchanged')).toBe(true);

    // Someone else's kernel under our name: refused, nothing touched, no temp files.
    await writeFile(join(dir, `vmlinux-${v}`), 'another kernel');
    const refused = await runCli(['kernel', 'install', '-v', '6.1', '-k', kernel.tree, '--prefix', prefix]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain('error[OUTPUT_EXISTS]');
    expect(refused.stderr).toContain(`vmlinux-${v}`);
    expect(await readFile(join(dir, `vmlinux-${v}`), 'utf8')).toBe('another kernel');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const forced = await runCli<KernelInstallResult>(['kernel', 'install', '-v', '6.1', '-k', kernel.tree, '--prefix', prefix, '-f', '--json']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(await sha256File(join(dir, `vmlinux-${v}`))).toBe(await sha256File(kernel.vmlinux));
    expect((await lstat(join(dir, 'vmlinux.container'))).isSymbolicLink()).toBe(true);
  });
});

describe('nvidia GPU variant (cheap path)', () => {
  let nvidiaTree: string | undefined;

  it('sets up -g nvidia, prepares modules, packs a headers tarball an external module builds against', async () => {
    const tree = join(work, 'nvidia');
    const setup = await runCli<SetupResult>(
      ['kernel', 'setup', '-v', '6.1', '-g', 'nvidia', '--source', LINUX_SOURCE_TARBALL, '--sha256', await sourceSha256(), '-k', tree, '--json'],
      { timeout: 15 * 60_000 },
    );
    expect(setup.exitCode, setup.stderr).toBe(0);
    expect(setup.json!.variant).toBe('nvidia-gpu');
    expect(setup.json!.verify.ok).toBe(true);

    const build = await runCli<KernelBuildResult>(['kernel', 'build', '-v', '6.1', '-g', 'nvidia', '-k', tree, '--headers-only', '--json'], {
      timeout: 20 * 60_000,
    });
    expect(build.exitCode, build.stderr).toBe(0);
    expect(build.json!.vmlinuz).toBeUndefined();
    expect(build.json!.kernelRelease).toMatch(/^6\.1\.\d+-kata$/);
    expect(build.json!.headersTarball).toBe(join(tree, `.osbuilder/out/linux-headers-${build.json!.kernelRelease}.tar.gz`));
    expect(build.json!.notes.join(' ')).toContain('no Module.symvers');

    // Unpack the tarball somewhere else and build a module against it.
    const hdrRoot = join(work, 'headers');
    await mkdir(hdrRoot);
    await execa('tar', ['-xzf', build.json!.headersTarball!, '-C', hdrRoot]);
    const hdr = join(hdrRoot, `linux-headers-${build.json!.kernelRelease}`);
    const listing = (await execa('tar', ['-tzvf', build.json!.headersTarball!])).stdout.split('\n');
    expect(
      listing.every((l) => / root\/root | 0\/0 /.test(l)),
      listing.slice(0, 3).join('\n'),
    ).toBe(true);
    expect(await readFile(join(hdr, '.config'), 'utf8')).toContain('CONFIG_MODULES=y');
    const mod = join(work, 'hello');
    await mkdir(mod);
    await writeFile(
      join(mod, 'hello.c'),
      '#include <linux/module.h>\nstatic int __init hello_init(void) { pr_info("hello\\n"); return 0; }\nstatic void __exit hello_exit(void) {}\nmodule_init(hello_init);\nmodule_exit(hello_exit);\nMODULE_LICENSE("GPL");\n',
    );
    await writeFile(join(mod, 'Makefile'), 'obj-m := hello.o\n');
    const make = await execa('make', ['-C', hdr, `M=${mod}`, 'ARCH=x86_64', 'modules'], { reject: false, all: true });
    expect(make.exitCode, make.all).toBe(0);
    const info = await execa('modinfo', ['-F', 'vermagic', join(mod, 'hello.ko')]);
    expect(info.stdout).toContain(build.json!.kernelRelease);
    expect(info.stdout).toContain('mod_unload');
    nvidiaTree = tree;
  });

  it('--engine docker: bootstraps the builder image (mmdebstrap | docker import) and runs make in it', async () => {
    expect(nvidiaTree, 'needs the previous test').toBeDefined();
    const r = await runCli<KernelBuildResult>(
      ['kernel', 'build', '-v', '6.1', '-g', 'nvidia', '-k', nvidiaTree!, '--headers-only', '--engine', 'docker', '--json'],
      { timeout: 30 * 60_000 },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json!.engine).toBe('docker');
    expect(r.json!.builderImage).toMatch(/^osbuilder-kernel-builder:bookworm-[0-9a-f]{12}$/);
    const label = await execa('docker', ['image', 'inspect', '--format', '{{index .Config.Labels "org.osbuilder.role"}}', r.json!.builderImage!]);
    expect(label.stdout.trim()).toBe('kernel-builder');
    const gcc = await execa('docker', ['run', '--rm', r.json!.builderImage!, 'gcc', '--version']);
    expect(gcc.stdout).toMatch(/gcc/);
    // Files the container wrote into the tree belong to us, not to root-in-container by accident.
    const st = await lstat(join(nvidiaTree!, 'include/config/kernel.release'));
    expect(st.uid).toBe(process.getuid!());
    const state = JSON.parse(await readFile(join(nvidiaTree!, '.osbuilder/state.json'), 'utf8'));
    expect(state.build.engine).toBe('docker');
    const left = await execa('docker', ['ps', '-a', '--filter', `label=org.osbuilder.build=${r.pid}`, '--format', '{{.Names}}']);
    expect(left.stdout.trim()).toBe('');
  });

  it('--engine docker with a remote engine (DOCKER_HOST elsewhere) is refused before any work: make would bind-mount the tree', async () => {
    expect(nvidiaTree, 'needs the tree').toBeDefined();
    const r = await runCli(['kernel', 'build', '-v', '6.1', '-g', 'nvidia', '-k', nvidiaTree!, '--headers-only', '--engine', 'docker'], {
      env: { DOCKER_HOST: 'tcp://192.0.2.1:2375' },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/^error\[UNSUPPORTED\]: kernel build --engine docker bind-mounts the kernel tree/m);
    expect(r.stderr).toMatch(/hint: unset DOCKER_HOST/);
  });
});
