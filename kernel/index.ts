/**
 * Guest kernels, after Kata's tools/packaging/kernel/build-kernel.sh:
 *   setup   obtain + verify + extract the source, assemble and verify .config (setup.ts)
 *   config  the same inputs; report only (and optionally write the config elsewhere) (setup.ts)
 *   build   make the boot images (and, for GPU guests, the kernel-devel material) (build-run.ts)
 *   install Kata's names under <prefix>/usr/share/kata-containers/ (install-run.ts)
 *   diff    two configs compared by symbol, grouped by Kconfig menu (diff-run.ts)
 * This module is their public face.
 */
export type { Arch } from '../core/arch.js';
export type { VerifyReport, OptionResult, Reason } from './verify.js';
export type { KernelState } from './state.js';
export type { BuildPlan, Engine } from './build.js';
export type { InstallResult } from './install.js';
export type { ConfigDiff, DiffGroup } from './diff.js';
export { CONFIDENTIAL_GUESTS, KERNEL_OPTIONS, type KernelOptionValues } from './options.js';
export { KERNEL_ARCH } from './arch.js';
export { installNames } from './install.js';
export { planBuild } from './build.js';
export { planBuilderImage } from './builder-image.js';
export { planSource, obtainSource, normaliseSha256 } from './source.js';
export { parseKernelVersion } from './version.js';
export { readConfigVersion, fragmentsHash, FRAGMENTS_DIR } from './fragments.js';
export type { KernelOptions } from './resolve.js';
export { setupKernel, configKernel, type ConfigSummary, type SetupResult, type ConfigResult } from './setup.js';
export { buildKernel, planKernelBuild, type BuildOptions, type BuildResult } from './build-run.js';
export { defaultMakeEngine, makeRunner } from './make-runner.js';
export { installKernel, type InstallOptions, type KernelInstallResult } from './install-run.js';
export { diffKernel, type DiffOptions } from './diff-run.js';
