/**
 * The GPU boot test's out-of-tree module, made as a user makes the NVIDIA
 * driver: built against the kernel-devel headers tarball of the GPU kernel
 * (make natively, or in the kernel builder container), then carried into the
 * guest as a second cpio archive after the initrd (the kernel unpacks both),
 * at /lib/modules/<release>/extra with its modules.dep, where modprobe finds
 * it when the agent loads it at CreateSandbox.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { ARCH_FACTS, crossCompile, type Arch } from '../core/arch.js';
import { haveTool, run } from '../core/exec.js';
import { OsbuilderError } from '../core/errors.js';
import { archiveChunks, planEntries } from '../initrd-builder/index.js';
import { defaultMakeEngine, makeRunner } from '../kernel/index.js';

export const PROBE_MODULE = 'osb_gpu_probe';

const SOURCE = `#include <linux/module.h>
#include <linux/moduleparam.h>
static char *token = "";
module_param(token, charp, 0444);
MODULE_PARM_DESC(token, "shown in /sys/module/${PROBE_MODULE}/parameters/token");
static int __init probe_init(void) { pr_info("${PROBE_MODULE}: loaded, token %s\\n", token); return 0; }
static void __exit probe_exit(void) {}
module_init(probe_init);
module_exit(probe_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("osbuilder boot test: built against the kernel-devel headers");
`;

/** Builds the probe module in `dir` against the headers tarball of kernel `release`; returns the .ko. */
export async function buildProbeModule(headersTarball: string, release: string, arch: Arch, dir: string): Promise<string> {
  await mkdir(join(dir, 'hdr'), { recursive: true });
  await tar.x({ file: headersTarball, cwd: join(dir, 'hdr') });
  const hdr = join(dir, 'hdr', `linux-headers-${release}`);
  if (!(await stat(hdr).catch(() => undefined))?.isDirectory())
    throw new OsbuilderError(
      'CACHE_CORRUPT',
      `${headersTarball} has no linux-headers-${release}/`,
      'rebuild the GPU kernel (osbuilder build -g nvidia --no-cache)',
    );
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, `${PROBE_MODULE}.c`), SOURCE);
  await writeFile(join(src, 'Makefile'), `obj-m := ${PROBE_MODULE}.o\n`);
  const engine = await defaultMakeEngine(arch);
  const cross = crossCompile(arch);
  const args = ['-C', hdr, `M=${src}`, `ARCH=${ARCH_FACTS[arch].kernelArch}`, ...(cross ? [`CROSS_COMPILE=${cross}`] : []), 'modules'];
  const runner = await makeRunner(engine, dir, { env: {} }, arch, undefined);
  await runner.runMake(args, false, () => undefined);
  return join(src, `${PROBE_MODULE}.ko`);
}

/**
 * Writes `out`: the initrd, zero-padded to 4 bytes, then an uncompressed newc
 * archive of /lib/modules/<release>/extra/<module>.ko and its modules.dep.
 */
export async function initrdWithModule(initrd: string, ko: string, release: string, dir: string, out: string): Promise<void> {
  const tree = join(dir, 'tree');
  const modDir = join(tree, 'lib/modules', release);
  await mkdir(join(modDir, 'extra'), { recursive: true });
  await copyFile(ko, join(modDir, 'extra', `${PROBE_MODULE}.ko`));
  if (await haveTool('depmod')) await run('depmod', ['-b', tree, release], { hint: 'depmod failed on the probe module' });
  else await writeFile(join(modDir, 'modules.dep'), `extra/${PROBE_MODULE}.ko:\n`);
  await copyFile(initrd, out);
  const size = (await stat(out)).size;
  const ws = createWriteStream(out, { flags: 'a' });
  async function* bytes() {
    if (size % 4) yield Buffer.alloc(4 - (size % 4));
    yield* archiveChunks(planEntries(tree, { rootOwned: true, mtimeClamp: 0 }), { entries: 0, bytes: 0, crc32: 0 });
  }
  await pipeline(bytes(), ws);
}
