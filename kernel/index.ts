/**
 * Guest kernels, after Kata's tools/packaging/kernel/build-kernel.sh:
 *   setup   obtain + verify + extract the source, assemble and verify .config
 *   config  the same inputs; report only (and optionally write the config elsewhere)
 *   build   make the boot images (and, for GPU guests, the kernel-devel material)
 *   install Kata's names under <prefix>/usr/share/kata-containers/
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { diesWithUs, run, haveTool } from '../core/exec.js';
import { sha256, sha256File } from '../core/hash.js';
import { atomicOutput, checkOutputPath } from '../core/atomic.js';
import { onInterrupt } from '../core/cleanup.js';
import { step, info } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { ContainerEngine } from '../core/docker.js';
import { ARCH_FACTS, crossCompile, hostArch, parseArch, type Arch } from '../core/arch.js';
import { assembleConfig, SCRATCH, type AssembleResult } from './assemble.js';
import { fragmentsHash, readConfigVersion, selectFragments, FRAGMENTS_DIR } from './fragments.js';
import { parseKernelVersion, treeVersion, versionMatches } from './version.js';
import { extractTarball, obtainSource, planSource, normaliseSha256 } from './source.js';
import { assertVerified, parseDotConfig, type OptionResult, type VerifyReport } from './verify.js';
import { readState, writeState, variantSuffix, type Artifact, type KernelState } from './state.js';
import { planBuild, defaultJobs, type Engine, type BuildPlan } from './build.js';
import { planBuilderImage, ensureBuilderImage } from './builder-image.js';
import { kernelRelease, writeHeadersTarball } from './headers.js';
import { watchMake } from './make-watch.js';
import { installFiles, installNames, type InstallAction, type InstallResult } from './install.js';
import { ownerTag } from '../core/owner.js';
import { diffConfigs, fragmentSide, OURS, type ConfigDiff, type DiffSide, type MenuIndex } from './diff.js';
import { cachedKernelTree, kernelMenus, readSide } from './diff-input.js';

export type { Arch } from '../core/arch.js';
export type { VerifyReport, OptionResult, Reason } from './verify.js';
export type { KernelState } from './state.js';
export type { BuildPlan, Engine } from './build.js';
export type { InstallResult } from './install.js';
export type { ConfigDiff, DiffGroup } from './diff.js';
export { KERNEL_ARCH } from './arch.js';
export { installNames } from './install.js';
export { planBuild } from './build.js';
export { planBuilderImage } from './builder-image.js';
export { planSource, obtainSource, normaliseSha256 } from './source.js';
export { parseKernelVersion } from './version.js';
export { readConfigVersion, fragmentsHash, FRAGMENTS_DIR } from './fragments.js';

export interface KernelOptions {
  /** -v: MAJOR.MINOR[.PATCH]. */
  version?: string;
  /** --source: local .tar.xz/.tar.gz or URL (default: kernel.org for -v). */
  source?: string;
  sha256?: string;
  /** -a (default: the host). */
  arch?: string;
  /** -g: only nvidia has fragments. */
  gpu?: string;
  confidential?: string;
  /** -f: replace a tree from another source (setup), replace different installed files (install). */
  force?: boolean;
  /** -k: the source tree directory (default ./kata-linux-<ver>-<cfgver><suffix>). */
  kernelDir?: string;
  /** Extra fragments merged last. */
  fragments?: string[];
}

interface Resolved {
  arch: Arch;
  version?: string;
  gpu?: 'nvidia';
  confidential?: 'tdx' | 'sev' | 'snp';
  configVersion: string;
  kernelDir: string;
  extra: string[];
}

type Variant = Pick<Resolved, 'arch' | 'gpu' | 'confidential'>;

function resolveVariant(opts: Pick<KernelOptions, 'arch' | 'gpu' | 'confidential'>): Variant {
  const arch = opts.arch ? parseArch(opts.arch) : hostArch();
  let gpu: Resolved['gpu'];
  if (opts.gpu) {
    if (opts.gpu !== 'nvidia') throw new OsbuilderError('UNSUPPORTED', `GPU vendor ${JSON.stringify(opts.gpu)} has no fragments`, 'use -g nvidia');
    gpu = 'nvidia';
  }
  let confidential: Resolved['confidential'];
  if (opts.confidential) {
    if (!['tdx', 'sev', 'snp'].includes(opts.confidential))
      throw new OsbuilderError('USAGE', `unknown confidential guest type ${JSON.stringify(opts.confidential)}`, 'use --confidential tdx, sev or snp');
    confidential = opts.confidential as Resolved['confidential'];
  }
  return { arch, gpu, confidential };
}

function resolveOptions(opts: KernelOptions): Resolved {
  const { arch, gpu, confidential } = resolveVariant(opts);
  const version = opts.version !== undefined ? parseKernelVersion(opts.version) : undefined;
  normaliseSha256(opts.sha256);
  const configVersion = readConfigVersion();
  let kernelDir: string;
  if (opts.kernelDir) kernelDir = resolve(opts.kernelDir);
  else if (version) kernelDir = resolve(`kata-linux-${version}-${configVersion}${variantSuffix({ gpu, confidential })}`);
  else throw new OsbuilderError('USAGE', 'give the kernel version (-v) or the source tree (--kernel-dir)', 'e.g. osbuilder kernel setup -v 6.1.62');
  return { arch, version, gpu, confidential, configVersion, kernelDir, extra: (opts.fragments ?? []).map((f) => resolve(f)) };
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** Makes sure the tree exists and holds the requested source; returns its source record. */
async function prepareTree(r: Resolved, opts: KernelOptions): Promise<KernelState['source'] & { version: string; reused: boolean }> {
  if (!opts.source && !r.version) throw new OsbuilderError('USAGE', 'give -v <version> or --source <tarball>', 'e.g. osbuilder kernel setup -v 6.1.62');
  if (await isDir(r.kernelDir)) {
    const state = await readState(r.kernelDir);
    const wantSha =
      normaliseSha256(opts.sha256) ?? (opts.source && !/^https?:/.test(opts.source) ? await sha256File(opts.source).catch(() => undefined) : undefined);
    const version = await treeVersion(r.kernelDir).catch(() => undefined);
    const same =
      state && version && (wantSha ? state.source.sha256 === wantSha : !opts.source && r.version !== undefined && versionMatches(r.version, state.version));
    const foreign = !state && version && !opts.source && !opts.sha256; // a tree the user made (Kata's -k)
    if (same || foreign) {
      if (r.version && version && !versionMatches(r.version, version)) {
        throw new OsbuilderError('INPUT_INVALID', `${r.kernelDir} holds Linux ${version}, not ${r.version}`, 'use another --kernel-dir, or -f to replace it');
      }
      return { ...(state?.source ?? { origin: r.kernelDir, sha256: '', topDir: '' }), version: version!, reused: true };
    }
    if (!opts.force) {
      throw new OsbuilderError(
        'OUTPUT_EXISTS',
        `${r.kernelDir} already exists and holds ${version ? `another source (Linux ${version})` : 'something else'}`,
        'pass -f to replace it, or choose another --kernel-dir',
      );
    }
    // -f replaces kernel trees only, never an arbitrary directory.
    if (!state && !version && (await readdir(r.kernelDir)).length > 0) {
      throw new OsbuilderError(
        'OUTPUT_INVALID',
        `${r.kernelDir} is not a kernel source tree; refusing to replace it even with -f`,
        'choose another --kernel-dir, or empty it yourself',
      );
    }
  }
  const spec = planSource({ version: r.version, source: opts.source, sha256: opts.sha256 });
  const src = await step(`obtain ${spec.location}`, () => obtainSource(spec));
  await mkdir(dirname(r.kernelDir), { recursive: true });
  const staging = `${r.kernelDir}.new-${ownerTag()}`;
  await rm(staging, { recursive: true, force: true });
  const unregister = onInterrupt(() => rm(staging, { recursive: true, force: true }));
  let version = '';
  try {
    const ex = await step(`extract ${src.tarball}`, () => extractTarball(src.tarball, src.compression, staging));
    version = await treeVersion(staging);
    if (r.version && !versionMatches(r.version, version)) {
      throw new OsbuilderError(
        'INPUT_INVALID',
        `${src.tarball} contains Linux ${version}, not ${r.version}`,
        `pass -v ${version}, or the tarball of ${r.version}`,
      );
    }
    await rm(r.kernelDir, { recursive: true, force: true });
    await rename(staging, r.kernelDir);
    // Record the source at once: a rerun after a failed verification reuses the tree.
    const source = { origin: src.origin, sha256: src.sha256, topDir: ex.topDir };
    await writeState(r.kernelDir, {
      version,
      arch: r.arch,
      gpu: r.gpu,
      confidential: r.confidential,
      configVersion: r.configVersion,
      source,
      fragmentsHash: '',
      fragments: [],
      configSha256: '',
    });
    return { ...source, version, reused: false };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  } finally {
    unregister();
  }
}

export interface ConfigSummary {
  ok: boolean;
  requested: number;
  present: number;
  dropped: OptionResult[];
  unknown: OptionResult[];
  ignored: OptionResult[];
  overrides: VerifyReport['overrides'];
}

function summary(rep: VerifyReport): ConfigSummary {
  return {
    ok: rep.ok,
    requested: rep.requested,
    present: rep.present.length,
    dropped: rep.dropped,
    unknown: rep.unknown,
    ignored: rep.ignored,
    overrides: rep.overrides,
  };
}

export interface SetupResult {
  kernelDir: string;
  version: string;
  arch: Arch;
  variant: string;
  configVersion: string;
  config: string;
  source: { origin: string; sha256: string; reused: boolean };
  fragments: string[];
  fragmentsHash: string;
  verify: ConfigSummary;
}

function context(r: Resolved, version: string): string {
  return `Linux ${version} (ARCH=${ARCH_FACTS[r.arch].kernelArch}${r.gpu ? `, -g ${r.gpu}` : ''}${r.confidential ? `, ${r.confidential}` : ''})`;
}

async function assembleIn(r: Resolved, version: string): Promise<AssembleResult> {
  return step(`assemble + verify .config for ${context(r, version)}`, () =>
    assembleConfig({ tree: r.kernelDir, arch: r.arch, gpu: r.gpu, confidential: r.confidential, extra: r.extra }),
  );
}

/** Fails early (before any download) on bad fragments or options. */
function preflight(r: Resolved): void {
  selectFragments({ arch: r.arch, gpu: r.gpu, confidential: r.confidential, extra: r.extra });
}

export async function setupKernel(opts: KernelOptions): Promise<SetupResult> {
  const r = resolveOptions(opts);
  preflight(r);
  const src = await prepareTree(r, opts);
  const asm = await assembleIn(r, src.version);
  assertVerified(asm.report, context(r, src.version));
  const dotConfig = join(r.kernelDir, '.config');
  const old = await readFile(dotConfig, 'utf8').catch(() => undefined);
  if (old !== asm.config) {
    await atomicOutput(dotConfig, (tmp) => writeFile(tmp, asm.config));
  }
  const prev = await readState(r.kernelDir);
  const state: KernelState = {
    version: src.version,
    arch: r.arch,
    gpu: r.gpu,
    confidential: r.confidential,
    configVersion: r.configVersion,
    source: { origin: src.origin, sha256: src.sha256, topDir: src.topDir },
    fragmentsHash: fragmentsHash(),
    fragments: asm.fragments,
    configSha256: asm.configSha256,
    build: prev?.configSha256 === asm.configSha256 && prev.arch === r.arch ? prev.build : undefined,
  };
  await writeState(r.kernelDir, state);
  return {
    kernelDir: r.kernelDir,
    version: src.version,
    arch: r.arch,
    variant: variantSuffix(r).replace(/^-/, '') || 'default',
    configVersion: r.configVersion,
    config: dotConfig,
    source: { origin: src.origin, sha256: src.sha256, reused: src.reused },
    fragments: asm.fragments,
    fragmentsHash: state.fragmentsHash,
    verify: summary(asm.report),
  };
}

export interface ConfigResult extends SetupResult {
  /** Where the assembled config was written (--output), if asked. */
  output?: string;
  /** The assembled config itself, with --output - (print instead of writing a file). */
  text?: string;
  /** Every option the fragments ask for, after merging (last fragment wins). */
  requested: Array<{ symbol: string; value: string; from: string }>;
  report: VerifyReport;
}

/**
 * Assembles and verifies without touching the tree's .config. A failed
 * verification throws (KERNEL_SYMBOL_UNKNOWN / KERNEL_OPTION_DROPPED), its
 * details listing every failed option.
 */
export async function configKernel(opts: KernelOptions & { output?: string }): Promise<ConfigResult> {
  const r = resolveOptions(opts);
  preflight(r);
  const toStdout = opts.output === '-';
  if (opts.output && !toStdout) await checkOutputPath(resolve(opts.output), { flag: '-o', name: 'kata-kernel.config' });
  const src = await prepareTree(r, opts);
  const asm = await assembleIn(r, src.version);
  assertVerified(asm.report, context(r, src.version));
  let output: string | undefined;
  if (opts.output && !toStdout) {
    output = resolve(opts.output);
    await atomicOutput(output, (tmp) => writeFile(tmp, asm.config));
  }
  return {
    kernelDir: r.kernelDir,
    version: src.version,
    arch: r.arch,
    variant: variantSuffix(r).replace(/^-/, '') || 'default',
    configVersion: r.configVersion,
    config: output ?? '',
    source: { origin: src.origin, sha256: src.sha256, reused: src.reused },
    fragments: asm.fragments,
    fragmentsHash: fragmentsHash(),
    verify: summary(asm.report),
    output,
    ...(toStdout ? { text: asm.config } : {}),
    requested: asm.merged.requested.map((q) => ({ symbol: q.symbol, value: q.value, from: `${q.file}:${q.line}` })),
    report: asm.report,
  };
}

async function loadState(r: Resolved, what: string): Promise<KernelState> {
  const state = await readState(r.kernelDir);
  if (!state) {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `${r.kernelDir} has not been set up`,
      `run osbuilder kernel setup first (with the same -v/-g/--kernel-dir), then ${what}`,
    );
  }
  if ((r.gpu ?? null) !== (state.gpu ?? null) || (r.confidential ?? null) !== (state.confidential ?? null) || r.arch !== state.arch) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${r.kernelDir} was set up for ${state.arch}${variantSuffix(state)}, not ${r.arch}${variantSuffix(r)}`,
      'pass the same -a/-g/--confidential as to setup, or set up another --kernel-dir',
    );
  }
  if (!state.configSha256) {
    throw new OsbuilderError('KERNEL_CONFIG', `${r.kernelDir} has no verified .config yet`, 'run osbuilder kernel setup until it verifies');
  }
  const cfg = await readFile(join(r.kernelDir, '.config'), 'utf8').catch(() => '');
  if (sha256(cfg) !== state.configSha256) {
    throw new OsbuilderError(
      'KERNEL_CONFIG',
      `${r.kernelDir}/.config changed since it was verified`,
      'rerun osbuilder kernel setup to assemble and verify it again',
    );
  }
  return state;
}

/** Artifacts are recorded relative to the tree, so a tree can be moved. */
async function artifact(tree: string, path: string): Promise<Artifact> {
  const abs = resolve(tree, path);
  const st = await stat(abs).catch(() => undefined);
  if (!st?.isFile()) throw new OsbuilderError('VERIFY_FAILED', `the build did not produce ${abs}`, 'rerun with --debug to see the make output');
  return { path: relative(tree, abs), sha256: await sha256File(abs), size: st.size };
}

export interface BuildOptions extends KernelOptions {
  engine?: Engine;
  jobs?: number;
  /** GPU variant: only modules_prepare + headers tarball (no images). */
  headersOnly?: boolean;
  /** Skip `make bindeb-pkg` even where possible. */
  noDeb?: boolean;
  mirror?: string;
}

export interface BuildResult {
  kernelDir: string;
  version: string;
  kernelRelease: string;
  arch: Arch;
  engine: Engine;
  jobs: number;
  builderImage?: string;
  vmlinuz?: string;
  vmlinux?: string;
  config: string;
  headersTarball?: string;
  debs?: string[];
  notes: string[];
}

/** The build plan for a set-up tree (pure apart from reading the state). */
export async function planKernelBuild(opts: BuildOptions): Promise<{ plan: BuildPlan; state: KernelState; resolved: Resolved }> {
  const r = resolveOptions(opts);
  const state = await loadState(r, 'build');
  const cfg = parseDotConfig(await readFile(join(r.kernelDir, '.config'), 'utf8'));
  const modules = cfg.get('MODULES') === 'y';
  const engine = opts.engine ?? 'native';
  const cross = crossCompile(r.arch);
  if (opts.headersOnly && !r.gpu) throw new OsbuilderError('USAGE', '--headers-only is for GPU kernels (-g nvidia)', 'drop --headers-only');
  const deb = !!r.gpu && !opts.noDeb && (engine === 'docker' || (await haveTool('dpkg-buildpackage')));
  const jobs = opts.jobs ?? defaultJobs();
  if (!Number.isInteger(jobs) || jobs < 1) throw new OsbuilderError('USAGE', `--make-jobs must be a positive integer, got ${opts.jobs}`, 'e.g. --make-jobs 2');
  const plan = planBuild({ arch: r.arch, jobs, cross, modules, devel: !!r.gpu, headersOnly: opts.headersOnly, deb, sourceDateEpoch: sourceDateEpoch() });
  if (engine === 'native' && cross && !(await haveTool(`${cross}gcc`))) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      `${cross}gcc is not installed (cross-building for ${r.arch})`,
      `install ${ARCH_FACTS[r.arch].crossPackage}, or use --engine docker`,
    );
  }
  return { plan, state, resolved: r };
}

async function collectDebs(tree: string, out: string, since: number): Promise<string[]> {
  const parent = dirname(tree);
  const moved: string[] = [];
  for (const f of (await readdir(parent)).sort()) {
    if (!/^linux-(image|headers|libc-dev)[^/]*\.deb$|^linux-upstream_.*\.(buildinfo|changes)$/.test(f)) continue;
    const st = await stat(join(parent, f));
    if (st.mtimeMs < since) continue;
    const dest = join(out, f);
    await rename(join(parent, f), dest);
    if (f.endsWith('.deb')) moved.push(dest);
  }
  return moved;
}

export async function buildKernel(opts: BuildOptions): Promise<BuildResult> {
  const { plan, state, resolved: r } = await planKernelBuild(opts);
  const engine = opts.engine ?? 'native';
  const tree = r.kernelDir;
  const notes: string[] = [];
  let runMake: (args: string[], mountParent: boolean, onOutput: (chunk: string) => void) => Promise<void>;
  let builderImage: string | undefined;
  if (engine === 'docker') {
    const eng = new ContainerEngine('docker');
    if (!eng.local)
      throw new OsbuilderError(
        'UNSUPPORTED',
        'kernel build --engine docker bind-mounts the kernel tree, so it needs a local engine (DOCKER_HOST / the docker context names another machine)',
        'unset DOCKER_HOST (or use the default context), or use --engine native',
      );
    const img = await ensureBuilderImage(eng, planBuilderImage({ arch: r.arch, mirror: opts.mirror }));
    builderImage = img.tag;
    const user = typeof process.getuid === 'function' ? `${process.getuid()}:${process.getgid!()}` : undefined;
    runMake = async (args, mountParent, onOutput) => {
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
  } else {
    if (!(await haveTool('make')))
      throw new OsbuilderError('TOOL_MISSING', 'make is not installed', 'install build-essential flex bison bc libelf-dev libssl-dev, or use --engine docker');
    runMake = async (args, _mountParent, onOutput) => {
      await run(...diesWithUs('make', args), {
        cwd: tree,
        env: { ...process.env, ...plan.env },
        hint: 'the kernel build failed: rerun with --debug to see the make output',
        onOutput,
      });
    };
  }
  const outDir = join(tree, SCRATCH, 'out');
  await mkdir(outDir, { recursive: true });
  const started = Date.now();
  const config = await readFile(join(tree, '.config'), 'utf8');
  for (const s of plan.steps) {
    const title = `make ${s.name} (-j${plan.jobs}, ${engine})`;
    await step(title, async () => {
      // Files compiled (of the total an earlier build of this config counted): spinner line on a TTY, --json events.
      const watch = await watchMake(tree, title, s.name, config);
      await runMake(s.args, s.name === 'bindeb-pkg', watch.onOutput);
      await watch.finish();
    });
  }
  const release = await kernelRelease(tree);
  const build: NonNullable<KernelState['build']> = {
    kernelRelease: release,
    engine,
    images: !opts.headersOnly,
    vmlinuz: state.build?.vmlinuz ?? { path: '', sha256: '', size: 0 },
    vmlinux: state.build?.vmlinux ?? { path: '', sha256: '', size: 0 },
  };
  if (plan.outputs.vmlinuz && plan.outputs.vmlinux) {
    build.vmlinuz = await artifact(tree, plan.outputs.vmlinuz);
    build.vmlinux = await artifact(tree, plan.outputs.vmlinux);
  } else build.images = state.build?.images ?? false;
  if (plan.devel.headers) {
    const dest = join(outDir, `linux-headers-${release}.tar.gz`);
    const mtime = new Date((sourceDateEpoch() ?? Math.floor(started / 1000)) * 1000);
    const h = await step(`pack headers tarball ${dest}`, () => atomicOutput(dest, (tmp) => writeHeadersTarball(tree, r.arch, release, tmp, mtime)));
    if (!h.hasSymvers) notes.push('headers tarball has no Module.symvers (modules were not built: --headers-only)');
    build.headersTarball = await artifact(tree, dest);
  }
  if (plan.devel.deb) {
    build.debs = await Promise.all((await collectDebs(tree, outDir, started - 1000)).map((d) => artifact(tree, d)));
    if (!build.debs.length) notes.push('make bindeb-pkg produced no .deb');
  } else if (r.gpu && !opts.headersOnly) notes.push('no .deb: dpkg-buildpackage is not installed (or --no-deb)');
  await writeState(tree, { ...state, build });
  info(`built Linux ${release} in ${tree}`);
  return {
    kernelDir: tree,
    version: state.version,
    kernelRelease: release,
    arch: r.arch,
    engine,
    jobs: plan.jobs,
    builderImage,
    vmlinuz: build.images ? join(tree, build.vmlinuz.path) : undefined,
    vmlinux: build.images ? join(tree, build.vmlinux.path) : undefined,
    config: join(tree, '.config'),
    headersTarball: build.headersTarball ? join(tree, build.headersTarball.path) : undefined,
    debs: build.debs?.map((d) => join(tree, d.path)),
    notes,
  };
}

export interface InstallOptions extends KernelOptions {
  /** DESTDIR-like root; files go to <prefix>/usr/share/kata-containers (Kata: DESTDIR=/ PREFIX=/usr). */
  prefix?: string;
}

export interface KernelInstallResult extends InstallResult {
  vmlinuz: string;
  vmlinux: string;
  config: string;
  version: string;
  configVersion: string;
}

export async function installKernel(opts: InstallOptions): Promise<KernelInstallResult> {
  const r = resolveOptions(opts);
  const state = await loadState(r, 'install');
  if (!state.build?.images) throw new OsbuilderError('INPUT_NOT_FOUND', `${r.kernelDir} has no built kernel`, 'run osbuilder kernel build first');
  for (const a of [state.build.vmlinuz, state.build.vmlinux]) {
    const abs = join(r.kernelDir, a.path);
    const st = await stat(abs).catch(() => undefined);
    if (!st || st.size !== a.size || (await sha256File(abs)) !== a.sha256) {
      throw new OsbuilderError('VERIFY_FAILED', `${abs} changed or disappeared since the build`, 'rerun osbuilder kernel build');
    }
  }
  const names = installNames({
    prefix: resolve(opts.prefix ?? '/'),
    version: state.version,
    configVersion: state.configVersion,
    gpu: state.gpu,
    confidential: state.confidential,
  });
  const cfgPath = join(r.kernelDir, '.config');
  const actions: InstallAction[] = [
    { kind: 'file', from: join(r.kernelDir, state.build.vmlinuz.path), to: join(names.dir, names.vmlinuz), sha256: state.build.vmlinuz.sha256 },
    { kind: 'file', from: join(r.kernelDir, state.build.vmlinux.path), to: join(names.dir, names.vmlinux), sha256: state.build.vmlinux.sha256 },
    { kind: 'file', from: cfgPath, to: join(names.dir, names.config), sha256: state.configSha256 },
    { kind: 'link', target: names.vmlinuz, to: join(names.dir, names.vmlinuzLink) },
    { kind: 'link', target: names.vmlinux, to: join(names.dir, names.vmlinuxLink) },
  ];
  const res = await step(`install into ${names.dir}`, () => installFiles(names.dir, actions, !!opts.force));
  return {
    ...res,
    vmlinuz: join(names.dir, names.vmlinuz),
    vmlinux: join(names.dir, names.vmlinux),
    config: join(names.dir, names.config),
    version: state.version,
    configVersion: state.configVersion,
  };
}

export interface DiffOptions extends Pick<KernelOptions, 'arch' | 'gpu' | 'confidential' | 'kernelDir' | 'fragments'> {
  /** Each side: a .config file, a fragments directory, or "ours". */
  left: string;
  right: string;
}

/** Our config as one side: resolved in --kernel-dir when given, else the merged fragment request. */
async function oursSide(v: Variant, tree: string | undefined, extra: string[]): Promise<DiffSide> {
  const what = `${v.arch}${variantSuffix(v)}`;
  if (!tree) {
    const frags = selectFragments({ ...v, extra });
    return fragmentSide('ours', 'ours-requested', `our fragments for ${what} as requested (${frags.length} files), not resolved: no --kernel-dir given`, frags);
  }
  const version = await treeVersion(tree);
  const asm = await step(`assemble our .config for ${what} in ${tree}`, () => assembleConfig({ tree, ...v, extra }));
  const failed = asm.report.dropped.length + asm.report.unknown.length;
  const note = failed ? `; ${failed} requested option(s) did not survive (osbuilder kernel config explains)` : '';
  return {
    source: 'ours',
    kind: 'ours-resolved',
    detail: `our .config for ${what} resolved by make olddefconfig in ${tree} (Linux ${version})${note}`,
    values: parseDotConfig(asm.config),
  };
}

/** Menus of a kernel tree in the build cache, if one is there and readable (grouping only: never fatal). */
function cachedMenus(arch: Arch): MenuIndex | undefined {
  const tree = cachedKernelTree(arch);
  try {
    return tree ? kernelMenus(tree, arch, 'build cache') : undefined;
  } catch (err) {
    if (!(err instanceof OsbuilderError)) throw err;
    info(`not grouping by Kconfig menu: ${err.message}`);
    return undefined;
  }
}

/**
 * Compares two kernel configs by symbol, grouped by Kconfig menu when a source
 * tree is known (--kernel-dir, else a tree in the build cache). Files are read
 * before `ours` is resolved, so bad input fails before any make runs.
 */
export async function diffKernel(opts: DiffOptions): Promise<ConfigDiff> {
  const v = resolveVariant(opts);
  const extra = (opts.fragments ?? []).map((f) => resolve(f));
  const tree = opts.kernelDir ? resolve(opts.kernelDir) : undefined;
  const read = (arg: string) => (arg === OURS ? undefined : readSide(arg, v.arch));
  const [left, right] = [read(opts.left), read(opts.right)];
  const menus = tree ? kernelMenus(tree, v.arch, '--kernel-dir') : cachedMenus(v.arch);
  const ours = left && right ? undefined : await oursSide(v, tree, extra);
  return diffConfigs(left ?? ours!, right ?? ours!, menus);
}
