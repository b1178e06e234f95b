/**
 * The GPU kernel's module path, the way a user brings the NVIDIA driver: an
 * out-of-tree module (with a parameter) built in a container against the
 * kernel-devel headers tarball the GPU build installs, put in a busybox rootfs
 * through --kernel-modules (Kata's KERNEL_MODULES_DIR), packed as an initrd,
 * and loaded by the agent at CreateSandbox from agent.kata.kernel_modules
 * (here --kernel-module): a container sees /sys/module/<name> with the
 * parameter's value. A module built for another kernel is refused by the
 * rootfs build with the vermagic named; a module the guest lacks fails
 * CreateSandbox with modprobe's own words.
 */
import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ContainerEngine } from '../../core/docker.js';
import { ensureBuilderImage, planBuilderImage } from '../../kernel/builder-image.js';
import type { BuildRootfsResult } from '../../rootfs-builder/index.js';
import { agentBinary } from '../support/agent.js';
import { bootJson, vmNamer } from '../support/boot.js';
import { runCli, type CliErrorJson } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { gpuKernel, type GuestKernel } from '../support/kernel.js';

const MODULE_C = `#include <linux/module.h>
#include <linux/moduleparam.h>
static char *greeting = "unset";
module_param(greeting, charp, 0444);
static int __init osb_hello_init(void) { pr_info("osb_hello: %s\\n", greeting); return 0; }
static void __exit osb_hello_exit(void) {}
module_init(osb_hello_init);
module_exit(osb_hello_exit);
MODULE_LICENSE("GPL");
`;

let work: string;
let kernel: GuestKernel;
/** <out>/lib/modules/<release>, as `make modules_install INSTALL_MOD_PATH=<out>` leaves it. */
let modules: string;
let initrd: string;
const vmName = vmNamer('osb-kmod');

/** Builds osb_hello in the kernel builder container against the headers tarball, then installs it under work/out. */
async function buildModule(): Promise<string> {
  const release = kernel.release;
  await mkdir(join(work, 'osb_hello'));
  await writeFile(join(work, 'osb_hello/osb_hello.c'), MODULE_C);
  await writeFile(join(work, 'osb_hello/Makefile'), 'obj-m := osb_hello.o\n');
  const { tag } = await ensureBuilderImage(new ContainerEngine('docker'), planBuilderImage({ arch: 'x86_64' }));
  const hdr = `/w/hdr/linux-headers-${release}`;
  const script = [
    'set -e',
    'mkdir -p /w/hdr',
    'tar -xzf /w/headers.tar.gz -C /w/hdr',
    `make -C ${hdr} M=/w/osb_hello modules`,
    `make -C ${hdr} M=/w/osb_hello modules_install INSTALL_MOD_PATH=/w/out`,
  ].join('\n');
  const r = await execa(
    'docker',
    [
      'run',
      '--rm',
      '--name',
      `osb-kmod-build-${process.pid}`,
      '-v',
      `${work}:/w`,
      '-v',
      `${kernel.headersTarball}:/w/headers.tar.gz:ro`,
      tag,
      'sh',
      '-c',
      script,
    ],
    { reject: false, all: true },
  );
  if (r.exitCode !== 0) throw new Error(`building osb_hello failed:\n${r.all}`);
  return join(work, 'out/lib/modules', release);
}

beforeAll(async () => {
  work = await makeTempDir('osb-kmod-');
  kernel = await gpuKernel();
  expect(kernel.headersTarball, 'the GPU build installs its kernel-devel tarball').toBeDefined();
  modules = await buildModule();
  const agent = await agentBinary();
  const root = await runCli<BuildRootfsResult>(['rootfs', 'busybox', '--agent', agent, '--kernel-modules', modules, '-o', join(work, 'root'), '--json']);
  if (root.exitCode !== 0) throw new Error(`osbuilder rootfs failed:\n${root.stderr}`);
  expect(root.json!.kernelModules).toBe(kernel.release);
  initrd = join(work, 'kmod.initrd');
  const ird = await runCli(['initrd', join(work, 'root'), '-o', initrd]);
  if (ird.exitCode !== 0) throw new Error(`osbuilder initrd failed:\n${ird.stderr}`);
}, 30 * 60_000);

describe('an out-of-tree module on the GPU kernel', () => {
  it('built against kernel-devel in a container: vermagic names the GPU kernel; modules_install put it where the rootfs takes it', async () => {
    const info = await execa('modinfo', ['-F', 'vermagic', join(modules, 'extra/osb_hello.ko')]);
    expect(info.stdout.split(' ')[0]).toBe(kernel.release);
    expect(info.stdout).toContain('modversions');
  });

  it('the agent loads it at CreateSandbox with its parameter; a container sees /sys/module/osb_hello', async () => {
    const r = await bootJson(
      vmName(),
      kernel.bzImage,
      ['--initrd', initrd, '--kernel-module', 'osb_hello greeting=from-osbuilder', '--guest-mount', '/sys:/guest/sys'],
      ['sh', '-c', 'cat /guest/sys/module/osb_hello/initstate /guest/sys/module/osb_hello/parameters/greeting'],
    );
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.json!.container!.stdout!.split('\n').filter(Boolean)).toEqual(['live', 'from-osbuilder']);
  });

  it('a module the guest does not have fails CreateSandbox with modprobe saying so', async () => {
    const r = await bootJson<CliErrorJson>(vmName(), kernel.bzImage, ['--initrd', initrd, '--kernel-module', 'osb_absent'], ['true']);
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error.message).toMatch(/load kernel module osb_absent: modprobe failed: modprobe: .*osb_absent/);
  });

  it('a module built for another kernel is refused before any build, the vermagic named', async () => {
    const other = join(work, 'other/lib/modules/6.1.0-99-other/extra');
    await mkdir(other, { recursive: true });
    await execa('cp', [join(modules, 'extra/osb_hello.ko'), other]);
    const r = await runCli<CliErrorJson>(['rootfs', 'busybox', '--kernel-modules', join(work, 'other'), '-o', join(work, 'root-other'), '--json']);
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error.code).toBe('INPUT_INVALID');
    expect(r.json!.error.message).toContain(`extra/osb_hello.ko was built for kernel ${kernel.release} (vermagic "${kernel.release} SMP`);
    expect(r.json!.error.message).toContain('not 6.1.0-99-other');
  });
});
