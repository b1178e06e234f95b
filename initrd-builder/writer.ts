/**
 * Streaming newc writer: turns planned entries into archive bytes, yielded as
 * CHUNK-sized buffers. Headers are encoded and file contents read straight
 * into the current chunk (no intermediate copies); nothing but the current
 * chunk is held, so memory stays flat whatever the rootfs size.
 *
 * File reads are synchronous on purpose: the rootfs is normally in the page
 * cache and a read(2) costs microseconds, while a thread-pool round trip per
 * open/fstat/read/close made the writer 5× slower. The event loop still runs
 * between chunks, which is when the compressor's pipe is fed.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { OsbuilderError } from '../core/errors.js';
import { encodeHeader, encodeTrailer, pad4 } from './newc.js';
import { unreadable, type ArchiveEntry } from './walk.js';

export const CHUNK = 1 << 20;

/**
 * Recycles chunk buffers once the consumer is done with them (see pump in
 * build.ts): allocating a fresh 1 MiB buffer per chunk cost more in garbage
 * collection than reading the files.
 */
export class ChunkPool {
  private free: Buffer[] = [];
  constructor(private readonly max = 16) {}

  get(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(CHUNK);
  }

  /** Gives back a chunk the consumer no longer references (partial chunks are dropped). */
  release(chunk: Buffer): void {
    if (chunk.length === CHUNK && chunk.byteOffset === 0 && this.free.length < this.max) this.free.push(chunk);
  }
}

export interface WriteStats {
  entries: number;
  /** Uncompressed archive length. */
  bytes: number;
  /**
   * CRC-32 of the uncompressed archive, to check that the written file
   * decompresses to exactly these bytes (zlib's crc32 is 4× faster than sha256 here).
   */
  crc32: number;
}

function changed(e: ArchiveEntry, got: number, grew = false): OsbuilderError {
  return new OsbuilderError(
    'INPUT_INVALID',
    `${e.path.toString('utf8')} changed while it was archived (${e.header.filesize} bytes when listed, ${grew ? 'more' : got} when read)`,
    'do not modify the rootfs while the initrd is built, then run the command again',
  );
}

function readAt(e: ArchiveEntry, fd: number, buf: Buffer, off: number, len: number, pos: number): number {
  try {
    return readSync(fd, buf, off, len, pos);
  } catch (err) {
    throw unreadable(e.path, err);
  }
}

/** The chunk being filled: small buffers are copied in, file data read straight into it. */
class Chunker {
  private crc = 0;
  private buf: Buffer;
  private used = 0;
  private readonly one = Buffer.alloc(1);

  constructor(
    private readonly pool: ChunkPool,
    private readonly stats: WriteStats,
  ) {
    this.buf = pool.get();
  }

  /** The bytes handed out plus those in the current chunk. */
  get offset(): number {
    return this.stats.bytes + this.used;
  }

  /** The full current chunk, handed out; a fresh one replaces it. */
  take(): Buffer {
    const out = this.used === this.buf.length ? this.buf : this.buf.subarray(0, this.used);
    this.crc = crc32(out, this.crc);
    this.stats.bytes += out.length;
    this.buf = this.pool.get();
    this.used = 0;
    return out;
  }

  /** The last, partly filled chunk (if any), and the archive's crc32 into the stats. */
  *finish(): Generator<Buffer> {
    if (this.used > 0) yield this.take();
    this.stats.crc32 = this.crc;
  }

  // Copies small buffers (headers, names, symlink targets, padding) into the chunk.
  // A generator so that a full chunk is yielded in the middle of a copy.
  *put(data: Buffer): Generator<Buffer> {
    let off = 0;
    while (off < data.length) {
      if (this.used === CHUNK) yield this.take();
      const k = Math.min(CHUNK - this.used, data.length - off);
      data.copy(this.buf, this.used, off, off + k);
      this.used += k;
      off += k;
    }
  }

  *putFile(e: ArchiveEntry): Generator<Buffer> {
    let fd: number;
    try {
      fd = openSync(e.path, 'r');
    } catch (err) {
      throw unreadable(e.path, err);
    }
    try {
      const size = e.header.filesize;
      let pos = 0;
      while (pos < size) {
        if (this.used === CHUNK) yield this.take();
        const n = readAt(e, fd, this.buf, this.used, Math.min(CHUNK - this.used, size - pos), pos);
        if (n === 0) throw changed(e, pos);
        this.used += n;
        pos += n;
      }
      if (readAt(e, fd, this.one, 0, 1, size) !== 0) throw changed(e, size, true);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Yields the archive (trailer and 512-byte end padding included) in chunks;
 * `stats` is filled in as it goes. Accepts sync or async entry sources. A
 * yielded chunk is the consumer's until it hands it back to `pool`.
 */
export async function* archiveChunks(
  entries: Iterable<ArchiveEntry> | AsyncIterable<ArchiveEntry>,
  stats: WriteStats,
  pool: ChunkPool = new ChunkPool(0),
): AsyncGenerator<Buffer> {
  stats.entries = 0;
  stats.bytes = 0;
  const out = new Chunker(pool, stats);
  for await (const e of entries) {
    yield* out.put(encodeHeader(e.header, e.name));
    if (e.linkTarget) yield* out.put(e.linkTarget);
    else if (e.hasData) yield* out.putFile(e);
    const pad = pad4(e.header.filesize);
    if (pad) yield* out.put(Buffer.alloc(pad));
    stats.entries++;
  }
  yield* out.put(encodeTrailer(out.offset));
  yield* out.finish();
}
