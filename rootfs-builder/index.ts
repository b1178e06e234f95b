/** Public entry of the rootfs stage. */
export { buildRootfs, type BuildRootfsResult, type BuildDeps } from './build.js';
export { checkRootfsOutput, locateKernelModules } from './preflight.js';
export { ensureDebianBase } from './images.js';
export { planRootfs, builderTag, CONTAINER_ROOT, METADATA_PATH, PACKAGES_PATH, type RootfsPlan, type PlanContext } from './plan.js';
export {
  rootfsOptionsFromCli,
  resolveRootfsOptions,
  localBaseTag,
  ENGINES,
  ROOTFS_OPTIONS,
  type Engine,
  type RootfsOptions,
  type RootfsOptionValues,
  type RootfsCliArgs,
  type ResolvedRootfsOptions,
} from './options.js';
export { renderDockerfile, dockerInstructions, shellRunBodies } from './dockerfile.js';
export { parseElf, readElf, checkElfForArch, type ElfInfo } from './elf.js';
export { verifyRootfs, checkAgentInRoot } from './checks.js';
export { AGENT_PATH, KATA_TRIMMED_UNITS, KATA_TRIMMED_FILES } from './systemd.js';
export { checkAgentFile, defaultAgent, type AgentBinary } from './agent-source.js';
export { prettyName } from './metadata.js';
export {
  PACKAGE_CACHE_TOP,
  PACKAGE_CACHE_MOUNT,
  packageCacheKey,
  planPackageCache,
  withPackageCache,
  type PackageCachePlan,
  type PackageCacheReport,
} from './package-cache.js';
