/**
 * `osbuilder initrd`: rootfs directory -> compressed newc initrd, streamed
 * (walk -> newc chunks -> compressor's stdin -> temp file), verified by
 * reading it back, then renamed into place.
 */
import { createWriteStream } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { atomicOutput, checkOutputPath } from '../core/atomic.js';
import { formatCommand, haveTool, spawnProcess, toolMissing } from '../core/exec.js';
import { onInterrupt } from '../core/cleanup.js';
import { sha256File } from '../core/hash.js';
import { sourceDateEpoch } from '../core/time.js';
import { step } from '../core/log.js';
import { CODECS, DEFAULT_COMPRESSION, resolveCompression, type Compression } from './codecs.js';
import { checkInit } from './init-check.js';
import type { InitrdOptionValues } from './options.js';
import { planEntries, type WalkOptions } from './walk.js';
import { archiveChunks, ChunkPool, type WriteStats } from './writer.js';
import { verifyInitrd } from './verify.js';

/** buildInitrd()'s options: the rootfs, the initrd file, and INITRD_OPTIONS. */
export interface InitrdOptions extends InitrdOptionValues {
  /** The rootfs directory (its /init must exist). */
  rootfs: string;
  /** The initrd file to write. */
  output: string;
  /** Clamp mtimes to this; default: SOURCE_DATE_EPOCH from the environment, if set. */
  sourceDateEpoch?: number;
}

export interface InitrdResult {
  path: string;
  compression: Compression;
  /** null for compression none. */
  level: number | null;
  entries: number;
  uncompressedBytes: number;
  sizeBytes: number;
  /** sha256 of the written (compressed) file. */
  sha256: string;
}

async function checkRootfs(rootfs: string): Promise<string> {
  const st = await stat(rootfs).catch(() => undefined);
  if (!st)
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `rootfs ${rootfs} does not exist`,
      'give the directory made by `osbuilder rootfs` (with --agent-init for an initrd)',
    );
  if (!st.isDirectory()) throw new OsbuilderError('INPUT_INVALID', `rootfs ${rootfs} is not a directory`, 'give a rootfs directory, not a file or an image');
  return realpath(rootfs);
}

async function findTool(compression: Exclude<Compression, 'none'>): Promise<string> {
  for (const tool of CODECS[compression].tools) if (await haveTool(tool)) return tool;
  throw toolMissing(CODECS[compression].tools.at(-1)!);
}

/** In-flight chunks: enough to keep the compressor busy, little enough to keep memory flat. */
const MAX_IN_FLIGHT = 8;

/**
 * Writes chunks to `out`, at most MAX_IN_FLIGHT not yet taken by the OS; a
 * chunk goes back to the pool once its write completed.
 */
async function pump(chunks: AsyncIterable<Buffer>, out: Writable, pool: ChunkPool): Promise<void> {
  let inFlight = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const onError = (err: Error) => {
    failure ??= err;
    wake?.();
  };
  out.on('error', onError);
  try {
    for await (const chunk of chunks) {
      if (failure) throw failure;
      inFlight++;
      out.write(chunk, (err) => {
        inFlight--;
        if (err) failure ??= err;
        else pool.release(chunk);
        wake?.();
      });
      while (inFlight >= MAX_IN_FLIGHT && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
    }
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  } finally {
    out.off('error', onError);
  }
}

/** Streams the archive through `tool` (or straight to the file) into `tmp`. */
async function writeCompressed(tmp: string, rootfs: string, walk: WalkOptions, stats: WriteStats, tool: string | undefined, args: string[]): Promise<void> {
  const pool = new ChunkPool(MAX_IN_FLIGHT + 2);
  const chunks = archiveChunks(planEntries(rootfs, walk), stats, pool);
  if (!tool) {
    await pump(chunks, createWriteStream(tmp, { mode: 0o644 }), pool);
    return;
  }
  const fh = await open(tmp, 'w', 0o644);
  try {
    // The compressor writes the file itself (execa hands any integer fd to the child; its types list only 3-9).
    const proc = spawnProcess(tool, args, { stdin: 'pipe', stdout: fh.fd as 3, stderr: 'pipe', buffer: { stdout: false } });
    const unregister = onInterrupt(() => void proc.kill());
    try {
      try {
        await pump(chunks, proc.stdin!, pool);
      } catch (err) {
        // EPIPE: the compressor died; its own error says why. Anything else is ours.
        proc.kill();
        const r = await proc;
        if ((err as NodeJS.ErrnoException).code === 'EPIPE' && r.exitCode !== 0 && r.exitCode !== undefined) throw compressorFailed(tool, args, r);
        throw err;
      }
      const r = await proc;
      if (r.exitCode !== 0) throw compressorFailed(tool, args, r);
    } finally {
      unregister();
    }
  } finally {
    await fh.close();
  }
}

function compressorFailed(tool: string, args: string[], r: { exitCode?: number; signal?: string; stderr?: unknown }): OsbuilderError {
  const detail = String(r.stderr ?? '')
    .trim()
    .split('\n')
    .slice(-10)
    .join('\n');
  return new OsbuilderError(
    'COMMAND_FAILED',
    `${formatCommand(tool, args)} failed (${r.signal ? `signal ${r.signal}` : `exit ${r.exitCode}`})${detail ? `:\n${detail}` : ''}`,
    'rerun with --debug; check free space at the output path',
  );
}

export async function buildInitrd(options: InitrdOptions): Promise<InitrdResult> {
  const { compression, level } = resolveCompression(options.compression ?? DEFAULT_COMPRESSION, options.level);
  const rootfs = await checkRootfs(options.rootfs);
  const output = resolve(options.output);
  await checkOutputPath(output, { flag: '-o', name: 'kata-containers-initrd.img' });
  const outDir = await realpath(dirname(output));
  if (outDir === rootfs || outDir.startsWith(rootfs + sep)) {
    throw new OsbuilderError('OUTPUT_INVALID', `output ${output} is inside the rootfs ${rootfs}`, 'write the initrd outside the directory it is made from');
  }
  const finalPath = join(outDir, basename(output));
  await checkInit(rootfs);
  const tool = compression === 'none' ? undefined : await findTool(compression);
  const args = compression === 'none' || level === undefined ? [] : CODECS[compression].compress(tool!, level);
  const walk: WalkOptions = { rootOwned: options.rootOwned ?? false, mtimeClamp: options.sourceDateEpoch ?? sourceDateEpoch() };
  const label = compression === 'none' ? 'uncompressed' : `${compression} -${level}${tool !== compression ? ` via ${tool}` : ''}`;

  return atomicOutput(finalPath, async (tmp) => {
    const stats: WriteStats = { entries: 0, bytes: 0, crc32: 0 };
    await step(`write initrd ${basename(finalPath)} (${label})`, () => writeCompressed(tmp, rootfs, walk, stats, tool, args));
    await step(`verify initrd (${stats.entries} entries)`, () => verifyInitrd(tmp, compression, tool, rootfs, walk, stats));
    const [sha256, st] = await Promise.all([sha256File(tmp), stat(tmp)]);
    return {
      path: finalPath,
      compression,
      level: level ?? null,
      entries: stats.entries,
      uncompressedBytes: stats.bytes,
      sizeBytes: st.size,
      sha256,
    };
  });
}
