/** `kernel build`: runs the build plan's make steps in a set-up tree, then records and checks what they produced. */
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { haveTool } from '../core/exec.js';
import { sha256File } from '../core/hash.js';
import { atomicOutput } from '../core/atomic.js';
import { step, info } from '../core/log.js';
import { sourceDateEpoch } from '../core/time.js';
import { ARCH_FACTS, crossCompile, type Arch } from '../core/arch.js';
import { SCRATCH } from './assemble.js';
import { parseDotConfig } from './verify.js';
import { loadState, writeState, type Artifact, type KernelState } from './state.js';
import { planBuild, defaultJobs, type Engine, type BuildPlan } from './build.js';
import { kernelRelease, writeHeadersTarball } from './headers.js';
import { watchMake } from './make-watch.js';
import { makeRunner, type RunMake } from './make-runner.js';
import { resolveOptions, type KernelOptions, type Resolved } from './resolve.js';

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

/** Artifacts are recorded relative to the tree, so a tree can be moved. */
async function artifact(tree: string, path: string): Promise<Artifact> {
  const abs = resolve(tree, path);
  const st = await stat(abs).catch(() => undefined);
  if (!st?.isFile()) throw new OsbuilderError('VERIFY_FAILED', `the build did not produce ${abs}`, 'rerun with --debug to see the make output');
  return { path: relative(tree, abs), sha256: await sha256File(abs), size: st.size };
}

/** Moves the packages bindeb-pkg wrote next to the tree since `since` into `out`; returns the moved .debs. */
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

async function runSteps(tree: string, plan: BuildPlan, engine: Engine, runMake: RunMake): Promise<void> {
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
}

interface BuildRun {
  opts: BuildOptions;
  r: Resolved;
  plan: BuildPlan;
  state: KernelState;
  engine: Engine;
  release: string;
  outDir: string;
  /** When the make steps started (ms). */
  started: number;
}

/** The build record of what the make steps produced (images, headers tarball, .debs), with notes on what is missing. */
async function recordBuild(b: BuildRun): Promise<{ build: NonNullable<KernelState['build']>; notes: string[] }> {
  const { opts, r, plan, state, release, outDir, started } = b;
  const tree = r.kernelDir;
  const notes: string[] = [];
  const build: NonNullable<KernelState['build']> = {
    kernelRelease: release,
    engine: b.engine,
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
  return { build, notes };
}

export async function buildKernel(opts: BuildOptions): Promise<BuildResult> {
  const { plan, state, resolved: r } = await planKernelBuild(opts);
  const engine = opts.engine ?? 'native';
  const tree = r.kernelDir;
  const { runMake, builderImage } = await makeRunner(engine, tree, plan, r.arch, opts.mirror);
  const outDir = join(tree, SCRATCH, 'out');
  await mkdir(outDir, { recursive: true });
  const started = Date.now();
  await runSteps(tree, plan, engine, runMake);
  const release = await kernelRelease(tree);
  const { build, notes } = await recordBuild({ opts, r, plan, state, engine, release, outDir, started });
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
