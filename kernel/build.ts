/**
 * Kernel build: a plan of `make` invocations (pure, unit-tested), run natively
 * or inside the builder container with the tree bind-mounted at the same path.
 * Reproducibility: KBUILD_BUILD_TIMESTAMP/USER/HOST are fixed (timestamp from
 * SOURCE_DATE_EPOCH when set).
 */
import { availableParallelism } from 'node:os';
import { ARCH_FACTS, type Arch } from '../core/arch.js';
import { KERNEL_ARCH } from './arch.js';

export type Engine = 'native' | 'docker';

export interface MakeInvocation {
  /** Short name for logs. */
  name: string;
  /** Arguments to make (run in the tree). */
  args: string[];
}

export interface BuildPlan {
  arch: Arch;
  jobs: number;
  env: Record<string, string>;
  steps: MakeInvocation[];
  /** Paths relative to the tree that must exist afterwards. */
  outputs: { vmlinuz?: string; vmlinux?: string };
  /** Build the kernel-devel material (headers tarball, .deb). */
  devel: { headers: boolean; deb: boolean };
}

export interface BuildPlanInput {
  arch: Arch;
  jobs?: number;
  cross?: string;
  /** CONFIG_MODULES=y in the verified config. */
  modules: boolean;
  /** GPU variant: produce headers tarball and (when possible) a .deb. */
  devel: boolean;
  /** Only `modules_prepare` + headers (no images): the cheap GPU check. */
  headersOnly?: boolean;
  /** `make bindeb-pkg` is possible (dpkg-buildpackage present). */
  deb?: boolean;
  sourceDateEpoch?: number;
}

export function defaultJobs(): number {
  return availableParallelism();
}

/** make arguments common to every step. */
export function makeBaseArgs(arch: Arch, jobs: number, cross?: string): string[] {
  const args = [`-j${jobs}`, `ARCH=${ARCH_FACTS[arch].kernelArch}`];
  if (cross) args.push(`CROSS_COMPILE=${cross}`);
  return args;
}

export function buildEnv(sourceDateEpoch?: number): Record<string, string> {
  const env: Record<string, string> = { KBUILD_BUILD_USER: 'osbuilder', KBUILD_BUILD_HOST: 'kata' };
  if (sourceDateEpoch !== undefined) env.KBUILD_BUILD_TIMESTAMP = new Date(sourceDateEpoch * 1000).toUTCString();
  return env;
}

export function planBuild(input: BuildPlanInput): BuildPlan {
  const jobs = input.jobs ?? defaultJobs();
  const base = makeBaseArgs(input.arch, jobs, input.cross);
  const info = KERNEL_ARCH[input.arch];
  const steps: MakeInvocation[] = [];
  if (input.headersOnly) {
    steps.push({ name: 'modules_prepare', args: [...base, 'modules_prepare'] });
  } else {
    const targets = [...info.targets, ...(info.targets.includes('vmlinux') ? [] : ['vmlinux'])];
    if (input.modules) targets.push('modules');
    steps.push({ name: targets.join(' '), args: [...base, ...targets] });
    if (input.devel) steps.push({ name: 'modules_prepare', args: [...base, 'modules_prepare'] });
  }
  const deb = !!(input.devel && input.deb && !input.headersOnly);
  if (deb) {
    // The kernel's own Debian packaging (linux-image, linux-headers = the kernel-devel package).
    steps.push({ name: 'bindeb-pkg', args: [...base, 'bindeb-pkg', 'KDEB_COMPRESS=xz', 'DPKG_FLAGS=-d'] });
  }
  return {
    arch: input.arch,
    jobs,
    env: buildEnv(input.sourceDateEpoch),
    steps,
    outputs: input.headersOnly ? {} : { vmlinuz: info.vmlinuz, vmlinux: info.vmlinux },
    devel: { headers: input.devel, deb },
  };
}
