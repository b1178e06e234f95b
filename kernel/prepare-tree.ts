/** The kernel source tree: reused when it holds the requested source, else obtained, extracted and stamped. */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { onInterrupt } from '../core/cleanup.js';
import { step } from '../core/log.js';
import { ownerTag } from '../core/owner.js';
import { treeVersion, versionMatches } from './version.js';
import { extractTarball, obtainSource, planSource, normaliseSha256 } from './source.js';
import { readState, writeState, type KernelState } from './state.js';
import type { KernelOptions, Resolved } from './resolve.js';

export type TreeSource = KernelState['source'] & { version: string; reused: boolean };

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** Makes sure the tree exists and holds the requested source; returns its source record. */
export async function prepareTree(r: Resolved, opts: KernelOptions): Promise<TreeSource> {
  if (!opts.source && !r.version) throw new OsbuilderError('USAGE', 'give -v <version> or --source <tarball>', 'e.g. osbuilder kernel setup -v 6.1.62');
  if (await isDir(r.kernelDir)) {
    const reused = await reuseTree(r, opts);
    if (reused) return reused;
  }
  return extractTree(r, opts);
}

/**
 * The existing tree's source record when it holds the requested source (or is a
 * tree the user made); undefined when -f may replace it; throws otherwise.
 */
async function reuseTree(r: Resolved, opts: KernelOptions): Promise<TreeSource | undefined> {
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
  return undefined;
}

/** Obtains the source and extracts it next to the tree, which it then replaces. */
async function extractTree(r: Resolved, opts: KernelOptions): Promise<TreeSource> {
  const spec = planSource({ version: r.version, source: opts.source, sha256: opts.sha256 });
  const src = await step(`obtain ${spec.location}`, () => obtainSource(spec));
  await mkdir(dirname(r.kernelDir), { recursive: true });
  const staging = `${r.kernelDir}.new-${ownerTag()}`;
  await rm(staging, { recursive: true, force: true });
  const unregister = onInterrupt(() => rm(staging, { recursive: true, force: true }));
  try {
    const ex = await step(`extract ${src.tarball}`, () => extractTarball(src.tarball, src.compression, staging));
    const version = await treeVersion(staging);
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
