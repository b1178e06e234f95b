/**
 * The bootstrap: the distro's commands fill the tree (in the engine or on the
 * host), the package list is queried, and the tree is brought to the host.
 */
import type { BuildCache } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { step } from '../core/log.js';
import type { DistroDefinition } from '../distros/index.js';
import { openPackageCache, packageCacheReport, usesPackageCache, type PackageCacheReport } from './package-cache.js';
import type { RootfsPlan } from './plan.js';
import type { Runner } from './runner.js';

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

/** What the bootstrap yields besides the tree. */
export interface Bootstrapped {
  /** Outputs of the commands with `capture`, by name. */
  captured: Record<string, string>;
  /** The package source command's output (dpkg status, …), when the distro lists packages by command. */
  packageOutput?: string;
  packageCache?: PackageCacheReport;
}

/**
 * The bootstrap commands, then (a command-made package list reads the tree
 * before it leaves the engine) the tree brought into `dir`. The engine-side
 * tree is removed whatever happens.
 */
export async function bootstrapTree(runner: Runner, plan: RootfsPlan, cache: BuildCache, d: DistroDefinition, dir: string): Promise<Bootstrapped> {
  const captured: Record<string, string> = {};
  const pc = plan.packageCache;
  const opening = runner.open();
  try {
    // Independent: on a remote engine each is a round trip (the volume; a listing container).
    const [before] = await settled(pc ? openPackageCache(cache, pc).then(() => runner.snapshotPackages(pc)) : undefined, opening);
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
    const [after] = await settled(pc ? runner.snapshotPackages(pc) : undefined, runner.fetchTree(dir));
    const packageCache = pc ? packageCacheReport(pc, before!, after!) : undefined;
    return { captured, ...(packageOutput !== undefined ? { packageOutput } : {}), ...(packageCache ? { packageCache } : {}) };
  } finally {
    await runner.close();
  }
}

/** Both results once both settled (nothing is left running behind a failure), else the first failure. */
async function settled<A, B>(a: Promise<A> | undefined, b: Promise<B>): Promise<[A | undefined, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}
