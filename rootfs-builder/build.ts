/**
 * The executor: runs a RootfsPlan. Kata's rootfs.sh with USE_DOCKER: make the
 * builder image, run it with only the output directory mounted (no
 * --privileged, no host /dev) to bootstrap the distro, then install the agent,
 * units, modules and metadata from the host through core/fs-safe, and check
 * the result. The rootfs is filled in a temp directory renamed into place only
 * when complete; interrupts remove the container and the temp directory.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { atomicDirectory, tempPathFor } from '../core/atomic.js';
import { BuildCache } from '../core/cache.js';
import { onInterrupt } from '../core/cleanup.js';
import { ContainerEngine, type EngineKind } from '../core/docker.js';
import { internalError, OsbuilderError } from '../core/errors.js';
import { haveTool, run } from '../core/exec.js';
import { SafeRoot } from '../core/fs-safe.js';
import { sha256File } from '../core/hash.js';
import { info, step } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { TOOL_VERSION as VERSION } from '../core/version.js';
import { hostArch, type Arch } from '../core/arch.js';
import type { Command, DistroDefinition, FileOp } from '../distros/types.js';
import { checkAgentFile, defaultAgent, type AgentBinary } from './agent-source.js';
import { applyFileOps } from './apply.js';
import { verifyRootfs } from './checks.js';
import { prettyName, renderMetadata, renderPackageList } from './metadata.js';
import { isKernelRelease, localBaseTag, localBaseTools, resolveRootfsOptions, type ResolvedRootfsOptions, type RootfsOptions } from './options.js';
import { clearBundles, parseApkInstalled, parseDpkgStatus, parseNameVersionLines } from './packages.js';
import { builderTag, localBaseArgv, planRootfs, type RootfsPlan } from './plan.js';
import {
  listPackagesArgv,
  openPackageCache,
  packageCacheEnv,
  packageCacheReport,
  parsePackageListing,
  snapshotPackages,
  usesPackageCache,
  withPackageCache,
  type PackageCachePlan,
  type PackageCacheReport,
  type PackageSnapshot,
} from './package-cache.js';
import { EngineTree } from './stream.js';
import { AGENT_PATH } from './systemd.js';

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

/** An unknown-package failure from the bootstrap tool, surfaced with the tool's own words. */
export function packageNotFound(err: unknown, d: DistroDefinition, version: string, extra: string[]): OsbuilderError | undefined {
  if (!(err instanceof OsbuilderError) || err.code !== 'COMMAND_FAILED') return undefined;
  for (const re of d.unknownPackagePatterns) {
    const m = re.exec(err.message);
    if (!m) continue;
    const name = m[1]!;
    const line =
      err.message
        .split('\n')
        .find((l) => re.test(l))
        ?.trim() ?? m[0];
    const fromExtra = extra.includes(name);
    return new OsbuilderError(
      'PACKAGE_NOT_FOUND',
      `${d.displayName} ${version} has no package "${name}"${fromExtra ? ' (asked for with --extra-pkgs/EXTRA_PKGS)' : ''}; ${d.bootstrapTool} said: ${line}`,
      fromExtra
        ? 'check the name in the distro archive (e.g. apt-cache search, packages.debian.org) or drop it from --extra-pkgs'
        : 'the distro package set does not match this version; pick another --os-version',
      { cause: err },
    );
  }
  return undefined;
}

/** Is there a binfmt handler to run `arch` binaries (cross builds)? */
async function canRunForeign(plan: RootfsPlan): Promise<boolean> {
  const qemu = { x86_64: 'qemu-x86_64', aarch64: 'qemu-aarch64', ppc64le: 'qemu-ppc64le', s390x: 'qemu-s390x' }[plan.arch];
  return (await stat(`/proc/sys/fs/binfmt_misc/${qemu}`).catch(() => undefined)) !== undefined;
}

function buildingUid(): number | undefined {
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0) return uid;
  const sudo = Number(process.env.SUDO_UID);
  return Number.isInteger(sudo) && sudo > 0 ? sudo : undefined;
}

/** Container names are unique per process: `osbuilder build --jobs N` runs several rootfs builds at once. */
let containerSeq = 0;

/**
 * Runs the plan's commands: on the host (--engine native, straight into the
 * temp dir), or each in a fresh builder container with the temp dir
 * bind-mounted (local engine) or the engine-side tree mounted
 * (rootfs-builder/stream.ts; a remote engine), which `fetchTree` brings to the host.
 */
class Runner {
  private readonly tree: EngineTree | undefined;

  constructor(
    private readonly plan: RootfsPlan,
    private readonly engine: ContainerEngine | undefined,
    private readonly image: string | undefined,
    private readonly hostRoot: string,
  ) {
    const c = plan.container;
    // A local engine sees hostRoot; a remote one fills a volume on its side, streamed back by fetchTree.
    if (engine && c && !engine.local)
      this.tree = new EngineTree(engine, { image: image!, env: c.env, ulimits: c.ulimits, ...(c.platform ? { platform: c.platform } : {}) }, c.mountPoint);
  }

  async open(): Promise<void> {
    await this.tree?.open();
  }

  async run(command: Command): Promise<string> {
    const pc = this.plan.packageCache;
    const cached = usesPackageCache(command, pc);
    const cmd = withPackageCache(command, pc);
    const pcEnv = cached ? packageCacheEnv(pc) : {};
    if (!this.engine) {
      const [bin, ...args] = cmd.argv;
      const r = await run(bin!, args, { input: cmd.input, timeout: 60 * 60_000, ...(cached ? { env: pcEnv } : {}) });
      return r.stdout;
    }
    const c = this.plan.container!;
    const r = await this.engine.run({
      image: this.image!,
      name: `osbuilder-rootfs-${process.pid}-${containerSeq++}`,
      argv: cmd.argv,
      mounts: cmd.builderOnly ? [] : [...(this.tree ? [] : [{ host: this.hostRoot, container: c.mountPoint }]), ...(cached ? pc.mounts : [])],
      volumes: cmd.builderOnly ? [] : [...(this.tree ? [{ volume: this.tree.volume, container: c.mountPoint }] : []), ...(cached ? pc.volumes : [])],
      env: { ...c.env, ...pcEnv },
      ulimits: c.ulimits,
      labels: { 'org.osbuilder.role': 'rootfs' },
      ...(c.platform ? { platform: c.platform } : {}),
      ...(cmd.input !== undefined ? { input: cmd.input } : {}),
    });
    return r.stdout;
  }

  /** The package cache's .debs: on the host, or listed in a container for a remote engine's volume. */
  async snapshotPackages(pc: PackageCachePlan): Promise<PackageSnapshot> {
    if (pc.volumes.length === 0 || !this.engine) return snapshotPackages(pc.hostDir);
    const r = await this.engine.run({
      image: this.image!,
      name: `osbuilder-rootfs-${process.pid}-${containerSeq++}`,
      argv: listPackagesArgv(pc.dir),
      volumes: pc.volumes,
      labels: { 'org.osbuilder.role': 'rootfs' },
      ...(this.plan.container?.platform ? { platform: this.plan.container.platform } : {}),
    });
    return parsePackageListing(r.stdout);
  }

  /** The engine-side tree, unpacked into `dir` (natively it is there already). */
  async fetchTree(dir: string): Promise<void> {
    if (this.tree) await step('fetch the rootfs from the engine (tar stream)', () => this.tree!.exportTo(dir));
  }

  /** Removes the engine-side tree (idempotent). */
  async close(): Promise<void> {
    await this.tree?.close();
  }

  async depmod(km: NonNullable<RootfsPlan['kernelModules']>, hostModules: string, fs: SafeRoot): Promise<void> {
    if (this.tree) await this.tree.depmod(km.depmod.argv, hostModules, fs, km.dest);
    else await this.run(km.depmod);
  }
}

/** Records which builder tools a locally made base holds; a base with another set is remade. */
const BASE_INCLUDE_LABEL = 'org.osbuilder.base-include';

async function ensureBaseImage(engine: ContainerEngine, plan: RootfsPlan): Promise<string> {
  const base = plan.base!;
  const existing = await engine.imageId(base.ref);
  const includeLabel = base.kind === 'bootstrap' ? base.include.join(',') : '';
  if (existing && (base.kind !== 'bootstrap' || (await engine.imageLabel(base.ref, BASE_INCLUDE_LABEL)) === includeLabel)) return existing;
  if (base.kind === 'given') {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `base image ${base.ref} is not present in the local ${engine.kind} image store`,
      `load or import it first (${engine.kind} images lists them), or drop --base-image (Debian-based distros make their base locally)`,
    );
  }
  if (base.kind === 'registry') {
    await step(`pull ${base.ref}`, () =>
      run(engine.cmd, ['pull', base.ref], {
        hint: 'no registry reachable? give a local image with --base-image (Debian-based distros make theirs locally unless --no-bootstrap-base)',
        timeout: 30 * 60_000,
      }),
    );
    return (await engine.imageId(base.ref)) ?? base.ref;
  }
  if (!(await haveTool('mmdebstrap'))) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      'mmdebstrap is not installed (needed to make the Debian base image locally)',
      'apt-get install mmdebstrap (scripts/setup-host.sh does), or give a local image with --base-image (or pull it: --no-bootstrap-base)',
    );
  }
  await step(`make base image ${base.ref} (mmdebstrap | ${engine.kind} import)`, () =>
    engine.importFrom(
      { cmd: 'mmdebstrap', args: base.bootstrapArgv! },
      base.ref,
      'check that the Debian mirror is reachable (--mirror), or give --base-image',
      [`LABEL ${BASE_INCLUDE_LABEL}=${includeLabel}`, 'CMD ["/bin/bash"]'],
    ),
  );
  const id = await engine.imageId(base.ref);
  if (!id) throw new OsbuilderError('COMMAND_FAILED', `${engine.kind} import did not produce ${base.ref}`, 'rerun with --debug');
  return id;
}

/**
 * A local Debian base image made with mmdebstrap | <engine> import, tagged
 * osbuilder/debian-base:<suite>-<arch> and reused when present. For tests and
 * tools that need a Debian image where no registry is reachable.
 */
export async function ensureDebianBase(opts: { engine?: EngineKind; suite?: string; arch?: Arch; mirror?: string } = {}): Promise<{ ref: string; id: string }> {
  const engine = new ContainerEngine(opts.engine ?? 'docker');
  await engine.check();
  const suite = opts.suite ?? 'bookworm';
  const arch = opts.arch ?? hostArch();
  const mirror = opts.mirror ?? 'http://deb.debian.org/debian';
  const ref = localBaseTag(suite, arch);
  const include = localBaseTools();
  const id = await ensureBaseImage(engine, {
    base: { kind: 'bootstrap', ref, suite, mirror, include, bootstrapArgv: localBaseArgv(suite, arch, mirror, include) },
  } as RootfsPlan);
  return { ref, id };
}

async function ensureBuilderImage(engine: ContainerEngine, plan: RootfsPlan, baseId: string): Promise<string> {
  const tag = builderTag(plan, baseId);
  if (await engine.imageId(tag)) {
    info(`✓ builder image ${tag} (cached)`);
    return tag;
  }
  const ctx = await mkdtemp(join(tmpdir(), 'osbuilder-builder-'));
  // An interrupt during `docker build` must not leave the build context behind either.
  const unregister = onInterrupt(() => rm(ctx, { recursive: true, force: true }));
  try {
    await writeFile(join(ctx, 'Dockerfile'), plan.builder!.dockerfile);
    await step(`build builder image ${tag}`, () =>
      engine.build(
        {
          tag,
          dockerfile: join(ctx, 'Dockerfile'),
          context: ctx,
          buildArgs: plan.builder!.buildArgs,
          labels: { 'org.osbuilder.role': 'rootfs-builder' },
          ...(plan.builder!.platform ? { platform: plan.builder!.platform } : {}),
        },
        `the builder image for ${plan.distro} needs its package archive; check --mirror and the network`,
      ),
    );
  } finally {
    unregister();
    await rm(ctx, { recursive: true, force: true });
  }
  return tag;
}

async function listPackages(fs: SafeRoot, plan: RootfsPlan, commandOutput: string | undefined): Promise<string[]> {
  const src = plan.packageSource;
  switch (src.kind) {
    case 'dpkg-status':
      return parseDpkgStatus((await fs.readText(src.path)) ?? '');
    case 'apk-installed':
      return parseApkInstalled((await fs.readText(src.path)) ?? '');
    case 'clear-bundles': {
      const names: string[] = [];
      const dir = await fs.stat(src.path);
      if (dir?.isDirectory()) {
        await fs.walkTree(({ name }) => {
          names.push(name);
          return 'skip';
        }, src.path);
      }
      return clearBundles(names, (await fs.readText(src.osRelease)) ?? '');
    }
    case 'command':
      return parseNameVersionLines(commandOutput ?? '');
  }
}

/**
 * The bootstrap commands, then (a command-made package list reads the tree
 * before it leaves the engine) the tree brought into `dir`. Returns the
 * package command's output. The engine-side tree is removed whatever happens.
 */
interface Bootstrapped {
  captured: Record<string, string>;
  /** The package source command's output (dpkg status, …), when the distro lists packages by command. */
  packageOutput?: string;
  packageCache?: PackageCacheReport;
}

/** Runs the bootstrap commands, queries the packages and brings the tree into `dir`. */
async function bootstrapTree(runner: Runner, plan: RootfsPlan, cache: BuildCache, d: DistroDefinition, dir: string): Promise<Bootstrapped> {
  const captured: Record<string, string> = {};
  const pc = plan.packageCache;
  await runner.open();
  try {
    if (pc) await openPackageCache(cache, pc);
    const before = pc ? await runner.snapshotPackages(pc) : undefined;
    for (const cmd of plan.bootstrap) {
      try {
        const title = usesPackageCache(cmd, pc) ? `${cmd.title} (package cache: ${before!.size} .debs)` : cmd.title;
        const out = await step(title, () => runner.run(cmd));
        if (cmd.capture) captured[cmd.capture] = out;
      } catch (err) {
        throw packageNotFound(err, d, plan.version, plan.packages.extra) ?? err;
      }
    }
    const src = plan.packageSource;
    const packageOutput = src.kind === 'command' ? await step('query packages', () => runner.run(src.command)) : undefined;
    await runner.fetchTree(dir);
    const packageCache = pc ? packageCacheReport(pc, before!, await runner.snapshotPackages(pc)) : undefined;
    return { captured, ...(packageOutput !== undefined ? { packageOutput } : {}), ...(packageCache ? { packageCache } : {}) };
  } finally {
    await runner.close();
  }
}

/** Builds a rootfs directory. See RootfsOptions; env-var defaults are applied by rootfsOptionsFromCli. */
export async function buildRootfs(options: RootfsOptions, deps: BuildDeps = {}): Promise<BuildRootfsResult> {
  const resolved: ResolvedRootfsOptions = resolveRootfsOptions(options);
  const d = resolved.distro;

  // Cheap checks first: nothing is built when an input is wrong.
  const sde = sourceDateEpoch();
  await checkRootfsOutput(resolved.output);
  if (resolved.kernelModules) resolved.kernelModules = await locateKernelModules(resolved.kernelModules.dir);
  let agent: AgentBinary | undefined = resolved.agent ? await checkAgentFile(resolved.agent, resolved.arch) : undefined;

  let engine: ContainerEngine | undefined;
  if (resolved.engine === 'native') {
    if (process.getuid?.() !== 0) {
      throw new OsbuilderError(
        'UNSUPPORTED',
        "--engine native needs root (the bootstrap tools create device nodes and set owners, as in Kata's rootfs.sh)",
        'run as root, or use --engine docker|podman',
      );
    }
    for (const tool of d.nativeTools) {
      if (!(await haveTool(tool)))
        throw new OsbuilderError('TOOL_MISSING', `${tool} is not installed (needed for ${d.name} with --engine native)`, 'install it, or use --engine docker');
    }
  } else {
    engine = new ContainerEngine(resolved.engine);
    await step(`${engine.kind} daemon`, () => engine!.check());
    // A killed run's builder container would otherwise run on, writing into a tree nobody reads.
    await engine.removeOrphans();
  }

  if (!agent) agent = await step(`agent for ${resolved.arch}`, () => (deps.defaultAgent ?? defaultAgent)(resolved.arch));
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
  if (resolved.builderArch !== resolved.hostArch && !(await canRunForeign(plan))) {
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `building a ${plan.arch} rootfs on ${resolved.hostArch} needs a qemu-user binfmt handler, and none is registered`,
      'apt-get install qemu-user-static binfmt-support, or build on a matching host',
    );
  }

  let image: string | undefined;
  let baseRef: string | undefined;
  if (engine) {
    const baseId = await ensureBaseImage(engine, plan);
    baseRef = plan.base!.ref;
    image = await ensureBuilderImage(engine, plan, baseId);
  }

  let report!: Awaited<ReturnType<typeof verifyRootfs>>;
  let packageCount = 0;
  let osRelease: string | undefined;
  let packageCache: PackageCacheReport | undefined;
  await atomicDirectory(resolved.output, async (dir) => {
    if (dir !== tmp) throw internalError(`temp dir ${dir} is not ${tmp}`);
    const runner = new Runner(plan, engine, image, dir);
    const bootstrapped = await bootstrapTree(runner, plan, cache, d, dir);
    const captured = bootstrapped.captured;
    const packageOutput = bootstrapped.packageOutput;
    packageCache = bootstrapped.packageCache;
    const fs = await SafeRoot.open(dir);
    try {
      const distroOps: FileOp[] = [...(d.postBootstrap?.(plan.bootstrapInput, captured) ?? [])];
      if (d.osRelease) distroOps.push({ op: 'write', path: '/etc/os-release', content: d.osRelease(plan.version, captured), mode: 0o644 });
      await step('configure the guest', async () => {
        await applyFileOps(fs, distroOps);
        await applyFileOps(fs, plan.fileOps);
      });

      if (plan.kernelModules) {
        const km = plan.kernelModules;
        await step(`kernel modules ${km.kver}`, async () => {
          await fs.remove(km.dest, { recursive: true });
          await fs.copyTreeIn(resolved.kernelModules!.dir, km.dest);
          await runner.depmod(km, resolved.kernelModules!.dir, fs);
        });
      }

      await step(`install agent ${AGENT_PATH}${plan.agent.init ? ' as init' : ''}`, () => fs.copyIn(agent!.path, AGENT_PATH, { mode: 0o755 }));

      const packages = await step('list packages', () => listPackages(fs, plan, packageOutput));
      packageCount = packages.length;
      await fs.writeFile(plan.metadata.packagesPath, renderPackageList(packages), { mode: 0o644 });
      await fs.writeFile(
        plan.metadata.path,
        renderMetadata({
          toolVersion: VERSION,
          distro: d.name,
          displayName: d.displayName,
          version: plan.version,
          arch: plan.arch,
          initMode: plan.initMode,
          packages: { default: plan.packages.default, extra: plan.packages.extra },
          agent: { path: AGENT_PATH, sha256: agentSha, source: agent!.source },
          ...(plan.kernelModules ? { kernelModules: plan.kernelModules.kver } : {}),
          createdAt: sde ?? Math.floor(Date.now() / 1000),
        }),
        { mode: 0o644 },
      );
      await fs.chmod('/', 0o755);
      if (sde !== undefined) await step('normalise mtimes to SOURCE_DATE_EPOCH', () => fs.setAllTimes(sde));

      report = await step('check the rootfs', () =>
        verifyRootfs(fs, {
          arch: plan.arch,
          initMode: plan.initMode,
          asRoot: process.getuid?.() === 0,
          agentLabel: agent!.source === 'default' ? "osbuilder's agent" : `agent ${agent!.path}`,
          ...(buildingUid() !== undefined ? { buildingUid: buildingUid()! } : {}),
        }),
      );
      // One flush for the whole tree (the bootstrap skipped per-file fsyncs) before it is renamed into place.
      await run('sync', ['-f', dir]);
      osRelease = prettyName((await fs.readText('/etc/os-release')) ?? '') || undefined;
    } finally {
      await fs.close();
    }
  });

  const result: BuildRootfsResult = {
    rootfs: resolved.output,
    distro: d.name,
    version: plan.version,
    arch: plan.arch,
    initMode: plan.initMode,
    engine: plan.engine,
    agent: { source: agent.source, sha256: agentSha, init: plan.agent.init, ...(report.agent.interpreter ? { interpreter: report.agent.interpreter } : {}) },
    packages: packageCount,
    metadata: plan.metadata.path,
    files: report.files,
  };
  if (plan.kernelModules) result.kernelModules = plan.kernelModules.kver;
  if (image) result.builderImage = image;
  if (baseRef) result.baseImage = baseRef;
  if (osRelease) result.osRelease = osRelease;
  if (packageCache) result.packageCache = packageCache;
  return result;
}
