/**
 * `osbuilder build --verify-reproducible`: builds the image and/or initrd
 * twice, each time from an empty cache, with one SOURCE_DATE_EPOCH, and
 * compares them. When they differ it names the first file whose rootfs
 * entries differ (or says the rootfs trees agree and the writer differs).
 * A check only: nothing is installed.
 */
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildCache, cacheRoot } from '../core/cache.js';
import { onInterrupt } from '../core/cleanup.js';
import { OsbuilderError } from '../core/errors.js';
import { step } from '../core/log.js';
import { resolveBuildPlan } from './build.js';
import type { BuildOptions } from './plan.js';
import { resolveAgent, rootfsArtifact, stageContext, type RootfsArtifact } from './stages.js';
import { firstDifference, treeDigest } from './switch.js';
import { ownerTag } from '../core/owner.js';

export interface ReproducibleResult {
  reproducible: boolean;
  sourceDateEpoch: number;
  artifacts: Array<{ file: string; sha256: [string, string]; identical: boolean; firstDifference?: string }>;
  notes: string[];
}

/** Offset of the first differing byte of two files (undefined when equal). */
async function firstDifferentByte(a: string, b: string): Promise<number | undefined> {
  const [fa, fb] = await Promise.all([open(a), open(b)]);
  try {
    const size = 1 << 20;
    const ba = Buffer.alloc(size);
    const bb = Buffer.alloc(size);
    for (let pos = 0; ; pos += size) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, pos), fb.read(bb, 0, size, pos)]);
      const n = Math.min(ra.bytesRead, rb.bytesRead);
      for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return pos + i;
      if (ra.bytesRead !== rb.bytesRead) return pos + n;
      if (n === 0) return undefined;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

export async function verifyReproducible(opts: BuildOptions): Promise<ReproducibleResult> {
  const plan = await resolveBuildPlan({ ...opts, kernel: opts.kernel ?? false });
  if (plan.rootfs.length === 0)
    throw new OsbuilderError('USAGE', '--verify-reproducible compares images and initrds: none was asked for', 'add --image and/or --initrd');
  const notes = plan.kernels.length ? ['the kernel is not compared (only the image and initrd are)'] : [];
  // One epoch for both rounds: the one given, else now.
  process.env.SOURCE_DATE_EPOCH ||= String(Math.floor(Date.now() / 1000));
  const sde = Number(process.env.SOURCE_DATE_EPOCH);
  await mkdir(join(cacheRoot(), 'work'), { recursive: true });
  const work = await mkdtemp(join(cacheRoot(), 'work', `repro-${ownerTag()}-`));
  const unregister = onInterrupt(() => rm(work, { recursive: true, force: true }));
  try {
    const agent = await resolveAgent(opts.agent, plan.arch);
    const rounds: RootfsArtifact[][] = [];
    for (const round of ['a', 'b']) {
      const dir = join(work, round);
      await mkdir(dir);
      const ctx = stageContext({ ...plan, cache: false, jobs: 1 }, opts, {
        cache: new BuildCache(join(dir, 'cache')),
        workDir: dir,
        agent,
        sourceDateEpoch: sde,
        keepRootfs: true,
      });
      const built: RootfsArtifact[] = [];
      for (const job of plan.rootfs) built.push(await step(`round ${round}: ${job.fileName}`, () => rootfsArtifact(ctx, job)));
      rounds.push(built);
    }
    const artifacts: ReproducibleResult['artifacts'] = [];
    for (let i = 0; i < plan.rootfs.length; i++) {
      const x = rounds[0]![i]!;
      const y = rounds[1]![i]!;
      const identical = x.sha256 === y.sha256;
      let diff: string | undefined;
      if (!identical) {
        const tree = firstDifference(await treeDigest(x.rootfsDir!, { metadata: true }), await treeDigest(y.rootfsDir!, { metadata: true }));
        diff = tree !== undefined ? `/${tree}` : `rootfs trees are identical; ${x.fileName} differs from byte ${await firstDifferentByte(x.path, y.path)}`;
      }
      artifacts.push({ file: x.fileName, sha256: [x.sha256, y.sha256], identical, ...(diff ? { firstDifference: diff } : {}) });
    }
    const bad = artifacts.find((x) => !x.identical);
    if (bad) {
      throw new OsbuilderError(
        'VERIFY_FAILED',
        `${bad.file} is not reproducible: first difference ${bad.firstDifference}`,
        'normalise what varies in that file (see the distro definition), then verify again',
      );
    }
    return { reproducible: true, sourceDateEpoch: sde, artifacts, notes };
  } finally {
    await rm(work, { recursive: true, force: true });
    unregister();
  }
}
