/**
 * Config assembly in a source tree, as build-kernel.sh does it (merge_config.sh
 * -n: fragments on an allnoconfig base) but checked strictly:
 *   1. `make allnoconfig` -> base (cached per tree, arch and compiler),
 *   2. requested lines replace the base's lines for the same symbols,
 *   3. the real `make olddefconfig` resolves dependencies,
 *   4. every requested option is compared with the result (verify.ts).
 * All of it happens on scratch files under <tree>/.osbuilder/ (KCONFIG_CONFIG),
 * so the tree's .config is only written once a config verified. A verified
 * result is remembered with what it was made from (proven.ts) and reused while
 * that is unchanged.
 */
import { writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { run, haveTool } from '../core/exec.js';
import { sha256 } from '../core/hash.js';
import { ARCH_FACTS, crossCompile, type Arch } from '../core/arch.js';
import {
  mergeFragments,
  readIgnoreList,
  renderRequested,
  selectFragments,
  type FragmentSelection,
  type IgnoreEntry,
  type MergedFragments,
  type Requested,
} from './fragments.js';
import { readKconfig, type KconfigTree } from './kconfig.js';
import { parseDotConfig, verifyConfig, type VerifyReport } from './verify.js';
import { provenKey, readProven, writeProven, type ProvenResult } from './proven.js';

export const SCRATCH = '.osbuilder';

/** make argv for a config target (pure). */
export function configMakeArgv(
  arch: Arch,
  target: string,
  kconfigConfig: string,
  cross?: string,
): { cmd: string; args: string[]; env: Record<string, string> } {
  const args = ['-s', `ARCH=${ARCH_FACTS[arch].kernelArch}`];
  if (cross) args.push(`CROSS_COMPILE=${cross}`);
  args.push(target);
  return { cmd: 'make', args, env: { KCONFIG_CONFIG: kconfigConfig } };
}

/** Replaces the base's lines for every requested symbol with the requested ones (pure). */
export function mergeOntoBase(base: string, requested: Requested[]): string {
  const want = new Set(requested.map((r) => r.symbol));
  const kept = base.split('\n').filter((line) => {
    const m = /^CONFIG_([A-Za-z0-9_]+)=/.exec(line) ?? /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
    return !(m && want.has(m[1]!));
  });
  return `${kept.join('\n').trimEnd()}\n# --- osbuilder fragments ---\n${renderRequested(requested)}`;
}

/** First lines of `<cross>gcc --version` and `<cross>ld --version`: the toolchain Kconfig tests. */
async function toolchainIds(cross?: string): Promise<string[]> {
  const first = (tool: string) =>
    run(`${cross ?? ''}${tool}`, ['--version']).then(
      (r) => r.stdout.split('\n')[0]!,
      () => `${cross ?? ''}${tool}`,
    );
  return Promise.all([first('gcc'), first('ld')]);
}

/** `make allnoconfig` into `basePath` (temp file renamed into place); returns the base. */
async function makeBase(tree: string, arch: Arch, basePath: string, cross: string | undefined, hint: string): Promise<string> {
  const tmp = `${basePath}.tmp-${process.pid}`;
  const a = configMakeArgv(arch, 'allnoconfig', join(SCRATCH, `${basePath.split('/').pop()}.tmp-${process.pid}`), cross);
  await run(a.cmd, a.args, { cwd: tree, env: { ...process.env, ...a.env }, hint });
  const base = await readFile(tmp, 'utf8');
  await rename(tmp, basePath);
  return base;
}

function readKconfigOf(tree: string, arch: Arch) {
  try {
    return readKconfig(tree, { srcarch: ARCH_FACTS[arch].srcarch, arch: ARCH_FACTS[arch].kernelArch });
  } catch (err) {
    throw new OsbuilderError('KERNEL_CONFIG', `cannot read the Kconfig files of ${tree}: ${(err as Error).message}`, 'is this a complete kernel source tree?');
  }
}

export interface AssembleOptions extends FragmentSelection {
  tree: string;
}

export interface AssembleResult {
  config: string;
  report: VerifyReport;
  merged: MergedFragments;
  fragments: string[];
  /** sha256 of the final config text. */
  configSha256: string;
  /** The tree's proven config for the same recipe was reused (its files unchanged): no make ran. */
  reused: boolean;
}

/** Where the cross toolchain prefix is, if its gcc is installed (else Kconfig's compiler tests use the host gcc). */
async function crossPrefix(arch: Arch): Promise<string | undefined> {
  const cross = crossCompile(arch);
  return cross && (await haveTool(`${cross}gcc`)) ? cross : undefined;
}

/**
 * The verified config for the selection: the tree's proven one when its recipe
 * and files are unchanged, else steps 1–4 (recorded when they verify). Throws
 * nothing for verification failures (the caller decides), only for tool errors.
 */
export async function assembleConfig(opts: AssembleOptions): Promise<AssembleResult> {
  const merged = mergeFragments(selectFragments(opts));
  const ignore = readIgnoreList(opts.dir);
  const scratch = join(opts.tree, SCRATCH);
  const cross = await crossPrefix(opts.arch);
  const toolchain = await toolchainIds(cross);
  const key = provenKey({ arch: opts.arch, merged, ignore, toolchain });
  const done = (r: ProvenResult, reused: boolean): AssembleResult => ({ ...r, merged, fragments: merged.fragments, configSha256: sha256(r.config), reused });
  const proven = await readProven(opts.tree, scratch, key);
  if (proven) return done(proven, true);
  await mkdir(scratch, { recursive: true });
  const fresh = await resolveAndVerify(opts, merged, ignore, cross, sha256(toolchain[0]!).slice(0, 12));
  if (fresh.report.ok) await writeProven(opts.tree, scratch, key, fresh.kconfigFiles, fresh);
  return done(fresh, false);
}

/** Steps 1–4 in the tree's scratch dir. */
async function resolveAndVerify(
  opts: AssembleOptions,
  merged: MergedFragments,
  ignore: Map<string, IgnoreEntry>,
  cross: string | undefined,
  compilerKey: string,
): Promise<ProvenResult & { kconfigFiles: string[] }> {
  const { tree, arch } = opts;
  const scratch = join(tree, SCRATCH);
  const karch = ARCH_FACTS[arch].kernelArch;
  const hint = 'the kernel configurator failed: is this a complete kernel source tree, and are make, gcc, flex and bison installed?';

  // 1. allnoconfig base (reused while the tree, arch and compiler are the same); the Kconfig
  //    tree is parsed while the first make of this run works (allnoconfig on a first run, else olddefconfig).
  const basePath = join(scratch, `allnoconfig.${karch}.${compilerKey}`);
  const cached = await readFile(basePath, 'utf8').catch(() => undefined);
  const making = cached === undefined ? makeBase(tree, arch, basePath, cross, hint) : undefined;
  // 2 + 3. merge onto the base and resolve with the real make olddefconfig.
  const work = join(scratch, `config.${karch}.${process.pid}`);
  // Synchronous up to the spawn, so make runs while readKconfig (synchronous) parses.
  const resolve = (base: string) => {
    writeFileSync(work, mergeOntoBase(base, merged.requested));
    const o = configMakeArgv(arch, 'olddefconfig', join(SCRATCH, `config.${karch}.${process.pid}`), cross);
    return run(o.cmd, o.args, { cwd: tree, env: { ...process.env, ...o.env }, hint });
  };
  const resolving = making ? making.then(resolve) : resolve(cached!);
  let config: string;
  let kconfig: KconfigTree;
  try {
    kconfig = readKconfigOf(tree, arch);
    await resolving;
    config = await readFile(work, 'utf8');
  } finally {
    await resolving.catch(() => undefined);
    await rm(work, { force: true });
    await rm(`${work}.old`, { force: true });
  }

  // 4. verify.
  const report = verifyConfig({ arch, requested: merged.requested, finalConfig: parseDotConfig(config), tree: kconfig, ignore, overrides: merged.overrides });
  await explainUnknown(tree, karch, kconfig, report);
  return { config, report, kconfigFiles: kconfig.paths };
}

/** Unknown symbols get where else they are defined (another arch), or that nothing defines them. */
async function explainUnknown(tree: string, karch: string, kconfig: KconfigTree, report: VerifyReport): Promise<void> {
  const unknown = [...report.unknown, ...report.ignored.filter((r) => !kconfig.symbols.has(r.symbol))];
  if (!unknown.length) return;
  const elsewhere = await findDefinitions(tree, new Set(unknown.map((u) => u.symbol)));
  for (const u of unknown) {
    const where = elsewhere.get(u.symbol);
    u.reasons = [
      {
        kind: 'unknown',
        text: where
          ? `not defined for ARCH=${karch}; defined in ${where.slice(0, 3).join(', ')}`
          : 'no Kconfig file in this source defines it (typo, or added/removed in another kernel version)',
      },
    ];
  }
}

/** Where symbols are defined anywhere in the tree (all arches): `config X` lines in every Kconfig* file. */
export async function findDefinitions(tree: string, symbols: Set<string>): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(tree, rel), { withFileTypes: true }).catch(() => [])) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!e.name.startsWith('.') && e.name !== 'Documentation' && e.name !== 'tools') await walk(p);
      } else if (e.name.startsWith('Kconfig')) {
        const lines = (await readFile(join(tree, p), 'utf8')).split('\n');
        lines.forEach((l, i) => {
          const m = /^\s*(?:menu)?config\s+(\S+)/.exec(l);
          if (m && symbols.has(m[1]!)) out.set(m[1]!, [...(out.get(m[1]!) ?? []), `${p}:${i + 1}`]);
        });
      }
    }
  };
  await walk('');
  return out;
}
