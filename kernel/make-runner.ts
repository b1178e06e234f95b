/** How the kernel's `make` runs: natively in the tree, or in the builder container with the tree bind-mounted at the same path. */
import { dirname } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { diesWithUs, run, haveTool } from '../core/exec.js';
import { ContainerEngine } from '../core/docker.js';
import { crossCompile, hostArch, type Arch } from '../core/arch.js';
import type { BuildPlan, Engine } from './build.js';
import { planBuilderImage, ensureBuilderImage } from './builder-image.js';

/** Runs make with `args` in the tree; `mountParent`: make writes next to the tree (bindeb-pkg). */
export type RunMake = (args: string[], mountParent: boolean, onOutput: (chunk: string) => void) => Promise<void>;

export interface MakeRunner {
  runMake: RunMake;
  /** The builder image's tag (docker engine). */
  builderImage?: string;
}

async function dockerRunner(tree: string, plan: Pick<BuildPlan, 'env'>, arch: Arch, mirror: string | undefined): Promise<MakeRunner> {
  const eng = new ContainerEngine('docker');
  if (!eng.local)
    throw new OsbuilderError(
      'UNSUPPORTED',
      'kernel build --engine docker bind-mounts the kernel tree, so it needs a local engine (DOCKER_HOST / the docker context names another machine)',
      'unset DOCKER_HOST (or use the default context), or use --engine native',
    );
  const img = await ensureBuilderImage(eng, planBuilderImage({ arch, mirror }));
  const user = typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid!()}` : undefined;
  const runMake: RunMake = async (args, mountParent, onOutput) => {
    const host = mountParent ? dirname(tree) : tree;
    await eng.run(
      {
        image: img.tag,
        name: `osbuilder-kernel-${process.pid}-${Date.now()}`,
        argv: ['make', ...args],
        mounts: [{ host, container: host }],
        workdir: tree,
        user,
        env: { ...plan.env, HOME: '/tmp' },
      },
      { hint: 'the kernel build failed inside the builder container: rerun with --debug to see the make output', timeout: 6 * 60 * 60_000, onOutput },
    );
  };
  return { runMake, builderImage: img.tag };
}

async function nativeRunner(tree: string, plan: Pick<BuildPlan, 'env'>): Promise<MakeRunner> {
  if (!(await haveTool('make')))
    throw new OsbuilderError('TOOL_MISSING', 'make is not installed', 'install build-essential flex bison bc libelf-dev libssl-dev, or use --engine docker');
  const runMake: RunMake = async (args, _mountParent, onOutput) => {
    await run(...diesWithUs('make', args), {
      cwd: tree,
      env: { ...process.env, ...plan.env },
      hint: 'the kernel build failed: rerun with --debug to see the make output',
      onOutput,
    });
  };
  return { runMake };
}

/** The engine when none is asked for: native when make and the (cross) compiler for `arch` are here, else the builder container. */
export async function defaultMakeEngine(arch: Arch, host: Arch = hostArch()): Promise<Engine> {
  const compiler = `${crossCompile(arch, host) ?? ''}gcc`;
  return (await haveTool('make')) && (await haveTool(compiler)) ? 'native' : 'docker';
}

/** The make runner for `engine` (docker: the builder image is built first when missing). */
export function makeRunner(engine: Engine, tree: string, plan: Pick<BuildPlan, 'env'>, arch: Arch, mirror: string | undefined): Promise<MakeRunner> {
  return engine === 'docker' ? dockerRunner(tree, plan, arch, mirror) : nativeRunner(tree, plan);
}
