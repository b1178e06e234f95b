/**
 * Verification of a written initrd before it is renamed into place: the file
 * is decompressed with the real tool, parsed back with our newc reader, and
 * compared entry by entry with a fresh walk of the rootfs (names, types, modes,
 * owners, link counts, mtimes, sizes, device numbers, symlink targets), and the
 * decompressed bytes must have the length and CRC-32 of what the writer produced.
 */
import { createReadStream } from 'node:fs';
import { crc32 } from 'node:zlib';
import { OsbuilderError } from '../core/errors.js';
import { spawnProcess, formatCommand } from '../core/exec.js';
import { onInterrupt } from '../core/cleanup.js';
import { CODECS, type Compression } from './codecs.js';
import { readNewc, CpioFormatError, type ReadEntry } from './reader.js';
import { planEntries, type ArchiveEntry, type WalkOptions } from './walk.js';
import type { NewcHeader } from './newc.js';

export interface VerifyExpect {
  entries: number;
  bytes: number;
  crc32: number;
}

const FIELDS: (keyof NewcHeader)[] = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor'];

function failed(message: string): OsbuilderError {
  return new OsbuilderError(
    'VERIFY_FAILED',
    message,
    'the rootfs may have changed during the build (run it again on a quiet rootfs); otherwise this is a bug in osbuilder: rerun with --debug and report it',
  );
}

/** Differences between an archive entry and the planned one, as text; empty when equal. */
export function compareEntry(got: ReadEntry, want: ArchiveEntry): string[] {
  const diffs: string[] = [];
  if (!got.nameBytes.equals(want.name)) diffs.push(`name ${JSON.stringify(got.name)} != ${JSON.stringify(want.name.toString('utf8'))}`);
  for (const f of FIELDS) if (got.header[f] !== want.header[f]) diffs.push(`${f} ${got.header[f]} != ${want.header[f]}`);
  if (want.linkTarget && !(got.data ?? Buffer.alloc(0)).equals(want.linkTarget))
    diffs.push(`symlink target ${JSON.stringify(got.data?.toString('utf8'))} != ${JSON.stringify(want.linkTarget.toString('utf8'))}`);
  return diffs;
}

async function* decompressed(path: string, compression: Compression, tool: string | undefined): AsyncGenerator<Buffer> {
  if (compression === 'none' || !tool) {
    yield* createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
    return;
  }
  const args = CODECS[compression].decompress(tool, path);
  const proc = spawnProcess(tool, args, { buffer: { stdout: false }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const unregister = onInterrupt(() => void proc.kill());
  let complete = false;
  try {
    yield* proc.stdout as AsyncIterable<Buffer>;
    complete = true;
  } finally {
    if (!complete) proc.kill();
    const r = await proc;
    unregister();
    if (complete && r.exitCode !== 0) {
      // biome-ignore lint/correctness/noUnsafeFinally: thrown only when the body completed (complete), so no error of its is masked
      throw failed(
        `${formatCommand(tool, args)} failed (${r.signal ? `signal ${r.signal}` : `exit ${r.exitCode}`}): ${String(r.stderr).trim().split('\n').slice(-5).join('\n')}`,
      );
    }
  }
}

/** Throws VERIFY_FAILED unless `path` unpacks to exactly the rootfs's entries and the writer's bytes. */
export async function verifyInitrd(
  path: string,
  compression: Compression,
  tool: string | undefined,
  rootfs: string,
  walk: WalkOptions,
  expect: VerifyExpect,
): Promise<void> {
  let crc = 0;
  let bytes = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of decompressed(path, compression, tool)) {
      crc = crc32(chunk, crc);
      bytes += chunk.length;
      yield chunk;
    }
  }
  const planned = planEntries(rootfs, walk);
  let index = 0;
  try {
    for await (const got of readNewc(counted())) {
      const next = await planned.next();
      if (next.done) throw failed(`archive entry ${index} (${got.name}) is not in the rootfs`);
      const diffs = compareEntry(got, next.value);
      if (diffs.length) throw failed(`archive entry ${index} (${got.name}) differs from the rootfs: ${diffs.join(', ')}`);
      index++;
    }
    const rest = await planned.next();
    if (!rest.done) throw failed(`the archive ends after ${index} entries, but the rootfs has ${rest.value.name.toString('utf8')} and more`);
  } catch (err) {
    if (err instanceof CpioFormatError) throw failed(`the written archive does not parse back: ${err.message}`);
    throw err;
  } finally {
    await planned.return(undefined);
  }
  if (index !== expect.entries) throw failed(`the archive has ${index} entries, the writer wrote ${expect.entries}`);
  if (bytes !== expect.bytes || crc !== expect.crc32) {
    throw failed(`the archive decompresses to ${bytes} bytes (CRC-32 ${crc.toString(16)}), the writer produced ${expect.bytes} (${expect.crc32.toString(16)})`);
  }
}
