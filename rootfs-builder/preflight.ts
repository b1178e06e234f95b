/**
 * The cheap checks run before anything is built: the output path, the kernel
 * modules directory, the engine (or the host tools for --engine native) and,
 * for cross builds, a binfmt handler.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hostArch, type Arch } from '../core/arch.js';
import { ContainerEngine } from '../core/docker.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool } from '../core/exec.js';
import { info, step } from '../core/log.js';
import { binfmtName, ensureBinfmt } from './binfmt.js';
import { isKernelRelease, type ResolvedRootfsOptions } from './options.js';
import type { RootfsPlan } from './plan.js';

/** The output may be a new path, an empty dir, or a previous osbuilder rootfs (replaced on success). */
export async function checkRootfsOutput(output: string): Promise<void> {
  const parent = dirname(output);
  if (!(await stat(parent).catch(() => undefined))?.isDirectory()) {
    throw new OsbuilderError('OUTPUT_INVALID', `output directory ${parent} does not exist`, `create it first (mkdir -p ${parent}) or choose another -o path`);
  }
  const st = await stat(output).catch(() => undefined);
  if (!st) return;
  if (!st.isDirectory())
    throw new OsbuilderError('OUTPUT_INVALID', `output path ${output} exists and is not a directory`, 'give a directory path for the rootfs');
  const entries = await readdir(output);
  if (entries.length === 0) return;
  const ours = await stat(join(output, 'var/lib/osbuilder/osbuilder.yaml')).catch(() => undefined);
  if (!ours) {
    throw new OsbuilderError(
      'OUTPUT_EXISTS',
      `${output} is not empty and is not an osbuilder rootfs`,
      'remove it or choose another -o path (osbuilder only replaces rootfs it built)',
    );
  }
}

/** Finds the kernel release a modules directory belongs to: its own name, or the one <kver> inside (…/lib/modules/<kver>). */
export async function locateKernelModules(dir: string): Promise<{ dir: string; kver: string }> {
  const st = await stat(dir).catch(() => undefined);
  if (!st)
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `kernel modules directory ${dir} does not exist`,
      'give --kernel-modules (or KERNEL_MODULES_DIR) the directory named after the kernel release, e.g. …/lib/modules/6.1.62',
    );
  if (!st.isDirectory()) throw new OsbuilderError('INPUT_INVALID', `${dir} is not a directory`, 'give the modules directory of one kernel');
  if (isKernelRelease(basename(dir))) return { dir, kver: basename(dir) };
  for (const sub of [dir, join(dir, 'lib/modules'), join(dir, 'usr/lib/modules')]) {
    const entries = await readdir(sub, { withFileTypes: true }).catch(() => []);
    const kvers = entries.filter((e) => e.isDirectory() && isKernelRelease(e.name)).map((e) => e.name);
    if (kvers.length === 1) return { dir: join(sub, kvers[0]!), kver: kvers[0]! };
    if (kvers.length > 1)
      throw new OsbuilderError('INPUT_INVALID', `${sub} holds modules for several kernels (${kvers.join(', ')})`, 'point --kernel-modules at one of them');
  }
  throw new OsbuilderError(
    'INPUT_INVALID',
    `cannot tell which kernel the modules in ${dir} are for`,
    'name the directory after the kernel release (as `make modules_install` does: lib/modules/<release>)',
  );
}

/** The container engine, checked and rid of a killed run's leftovers; undefined for --engine native (root and the distro's tools checked). */
export async function openEngine(resolved: ResolvedRootfsOptions): Promise<ContainerEngine | undefined> {
  if (resolved.engine !== 'native') {
    const engine = new ContainerEngine(resolved.engine);
    await step(`${engine.kind} daemon`, () => engine.check());
    // A killed run's builder container would otherwise run on, writing into a tree nobody reads.
    await engine.removeOrphans();
    return engine;
  }
  if (process.getuid?.() !== 0) {
    throw new OsbuilderError(
      'UNSUPPORTED',
      "--engine native needs root (the bootstrap tools create device nodes and set owners, as in Kata's rootfs.sh)",
      'run as root, or use --engine docker|podman',
    );
  }
  for (const tool of resolved.distro.nativeTools) {
    if (!(await haveTool(tool)))
      throw new OsbuilderError(
        'TOOL_MISSING',
        `${tool} is not installed (needed for ${resolved.distro.name} with --engine native)`,
        'install it, or use --engine docker',
      );
  }
  if (resolved.distro.bootstrapTool === 'mmdebstrap') await checkForeignMmdebstrap(resolved.arch, resolved.hostArch);
  return undefined;
}

/** mmdebstrap refuses a foreign --arch without arch-test ("install arch-test for foreign architecture support"): said before it runs. */
export async function checkForeignMmdebstrap(arch: Arch, host: Arch = hostArch()): Promise<void> {
  if (arch === host || (await haveTool('arch-test'))) return;
  throw new OsbuilderError(
    'TOOL_MISSING',
    `arch-test is not installed: mmdebstrap needs it to bootstrap ${arch} on this ${host} host`,
    'apt-get install arch-test (scripts/setup-host.sh does)',
  );
}

/** A cross build runs the plan's arch binaries: its qemu-user binfmt handler, registered if need be, before any work. */
export async function checkForeignArch(resolved: ResolvedRootfsOptions, plan: RootfsPlan): Promise<void> {
  if (resolved.builderArch === resolved.hostArch) return;
  const r = await ensureBinfmt(plan.arch);
  if (r === 'registered') info(`registered the ${binfmtName(plan.arch)} binfmt handler from qemu-user-static`);
}
