/**
 * The executor: runs a RootfsPlan. Kata's rootfs.sh with USE_DOCKER: make the
 * builder image, run it with only the output directory mounted (no
 * --privileged, no host /dev) to bootstrap the distro, then install the agent,
 * units, modules and metadata from the host through core/fs-safe, and check
 * the result. The rootfs is filled in a temp directory renamed into place only
 * when complete; interrupts remove the container and the temp directory.
 */
import { atomicDirectory, tempPathFor } from '../core/atomic.js';
import { BuildCache } from '../core/cache.js';
import type { ContainerEngine } from '../core/docker.js';
import { internalError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { step } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { TOOL_VERSION as VERSION } from '../core/version.js';
import { checkAgentFile, defaultAgent, type AgentBinary } from './agent-source.js';
import { bootstrapTree } from './bootstrap.js';
import { finishTree, type Finished } from './finish.js';
import { ensureBaseImage, ensureBuilderImage } from './images.js';
import { resolveRootfsOptions, type RootfsOptions } from './options.js';
import type { PackageCacheReport } from './package-cache.js';
import { planRootfs, type RootfsPlan } from './plan.js';
import { checkForeignArch, checkRootfsOutput, locateKernelModules, openEngine } from './preflight.js';
import { checkModulesVermagic } from './module-vermagic.js';
import { Runner } from './runner.js';

export interface BuildRootfsResult {
  rootfs: string;
  distro: string;
  version: string;
  arch: string;
  initMode: string;
  engine: string;
  agent: { source: string; sha256: string; init: boolean; interpreter?: string };
  packages: number;
  kernelModules?: string;
  builderImage?: string;
  baseImage?: string;
  osRelease?: string;
  metadata: string;
  files: number;
  /** The package cache this build used (absent: off, or the distro has none). */
  packageCache?: PackageCacheReport;
}

export interface BuildDeps {
  /** osbuilder's own agent for an arch (defaults to the agent stage). */
  defaultAgent?: typeof defaultAgent;
}

/** Builds a rootfs directory. See RootfsOptions; env-var defaults are applied by rootfsOptionsFromCli. */
export async function buildRootfs(options: RootfsOptions, deps: BuildDeps = {}): Promise<BuildRootfsResult> {
  const resolved = resolveRootfsOptions(options);
  const d = resolved.distro;

  // Cheap checks first: nothing is built when an input is wrong.
  const sde = sourceDateEpoch();
  await checkRootfsOutput(resolved.output);
  if (resolved.kernelModules) {
    resolved.kernelModules = await locateKernelModules(resolved.kernelModules.dir);
    await checkModulesVermagic(resolved.kernelModules.dir, resolved.kernelModules.kver);
  }
  const given = resolved.agent ? await checkAgentFile(resolved.agent, resolved.arch) : undefined;
  const engine = await openEngine(resolved);
  const agent = given ?? (await step(`agent for ${resolved.arch}`, () => (deps.defaultAgent ?? defaultAgent)(resolved.arch)));
  const agentSha = await sha256File(agent.path);

  const tmp = tempPathFor(resolved.output);
  const cache = new BuildCache();
  const plan = planRootfs(resolved, {
    toolVersion: VERSION,
    ...(sde !== undefined ? { sourceDateEpoch: sde } : {}),
    nativeRoot: tmp,
    packageCacheRoot: cache.root,
    remoteEngine: engine ? !engine.local : false,
  });
  await checkForeignArch(resolved, plan);
  const image = engine ? await builderImage(engine, plan) : undefined;

  const built = await atomicDirectory(resolved.output, async (dir) => {
    if (dir !== tmp) throw internalError(`temp dir ${dir} is not ${tmp}`);
    const runner = new Runner(plan, engine, image, dir);
    const bootstrapped = await bootstrapTree(runner, plan, cache, d, dir);
    const modulesDir = resolved.kernelModules?.dir;
    const finished = await finishTree(dir, { plan, distro: d, bootstrapped, runner, agent, agentSha, ...(modulesDir ? { modulesDir } : {}) });
    return { ...finished, ...(bootstrapped.packageCache ? { packageCache: bootstrapped.packageCache } : {}) };
  });
  return rootfsResult(plan, agent, agentSha, built, image);
}

/** The builder image (its base first) for a container engine. */
async function builderImage(engine: ContainerEngine, plan: RootfsPlan): Promise<string> {
  const baseId = await ensureBaseImage(engine, plan);
  return ensureBuilderImage(engine, plan, baseId);
}

function rootfsResult(
  plan: RootfsPlan,
  agent: AgentBinary,
  agentSha: string,
  { report, packages, osRelease, packageCache }: Finished & { packageCache?: PackageCacheReport },
  image: string | undefined,
): BuildRootfsResult {
  const result: BuildRootfsResult = {
    rootfs: plan.output,
    distro: plan.distro,
    version: plan.version,
    arch: plan.arch,
    initMode: plan.initMode,
    engine: plan.engine,
    agent: { source: agent.source, sha256: agentSha, init: plan.agent.init, ...(report.agent.interpreter ? { interpreter: report.agent.interpreter } : {}) },
    packages,
    metadata: plan.metadata.path,
    files: report.files,
  };
  if (plan.kernelModules) result.kernelModules = plan.kernelModules.kver;
  if (image) result.builderImage = image;
  if (image) result.baseImage = plan.base!.ref;
  if (osRelease) result.osRelease = osRelease;
  if (packageCache) result.packageCache = packageCache;
  return result;
}
