/**
 * Streaming newc reader: parses an uncompressed archive from any async source
 * of bytes, one entry at a time. Used to verify what we wrote, and by tests.
 * Only the data of entries the caller asks for is kept in memory.
 */
import { CpioFormatError, HEADER_SIZE, TRAILER_NAME, decodeHeader, kindOfMode, pad4, type DecodedHeader, type EntryKind } from './newc.js';

export { CpioFormatError };

export interface ReadEntry {
  /** Archive name as text (UTF-8). */
  name: string;
  nameBytes: Buffer;
  kind: EntryKind | undefined;
  header: DecodedHeader;
  /** Offset of the header in the archive. */
  offset: number;
  /** The entry's data, when `collect` asked for it. */
  data?: Buffer;
}

export interface ReadOptions {
  /** Keep the data of entries for which this returns true (default: symlinks only). */
  collect?: (header: DecodedHeader, name: string) => boolean;
  /** Called for every piece of every entry's data (e.g. to hash contents). */
  onData?: (entry: { name: string; header: DecodedHeader }, piece: Buffer) => void;
}

class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  /** Bytes consumed so far. */
  offset = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array>) {}

  /** Ensures n bytes are buffered; false if the source ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.done) {
      const r = await this.source.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
    return this.buffered >= n;
  }

  /** Removes up to n buffered bytes, calling `sink` with each piece (no copy). */
  private drop(n: number, sink?: (piece: Buffer) => void): number {
    let left = n;
    while (left > 0 && this.chunks.length > 0) {
      const c = this.chunks[0]!;
      const avail = c.length - this.head;
      const k = Math.min(avail, left);
      if (sink) sink(c.subarray(this.head, this.head + k));
      left -= k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    const taken = n - left;
    this.buffered -= taken;
    this.offset += taken;
    return taken;
  }

  /** Exactly n bytes as one buffer (copied only when they span chunks). */
  async take(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) return undefined;
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.drop(n);
      return out;
    }
    const parts: Buffer[] = [];
    this.drop(n, (p) => parts.push(p));
    return Buffer.concat(parts, n);
  }

  /** Streams n bytes to `sink` without gathering them; false if the source ends first. */
  async pass(n: number, sink?: (piece: Buffer) => void): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) return false;
      left -= this.drop(Math.min(left, this.buffered), sink);
    }
    return true;
  }

  /** True when everything left is NUL bytes (end padding). */
  async restIsZeros(): Promise<boolean> {
    let zeros = true;
    for (;;) {
      if (this.buffered === 0 && !(await this.fill(1))) return zeros;
      this.drop(this.buffered, (p) => {
        if (zeros && p.some((b) => b !== 0)) zeros = false;
      });
    }
  }
}

/**
 * Yields each entry (the trailer excluded), its data consumed. Throws
 * CpioFormatError on a bad header, a truncated archive, a missing trailer or
 * anything but NUL padding after it.
 */
export async function* readNewc(source: AsyncIterable<Buffer | Uint8Array>, opts: ReadOptions = {}): AsyncGenerator<ReadEntry> {
  const collect = opts.collect ?? ((h: DecodedHeader) => kindOfMode(h.mode) === 'symlink');
  const q = new ByteQueue(source[Symbol.asyncIterator]());
  for (;;) {
    const offset = q.offset;
    const raw = await q.take(HEADER_SIZE);
    if (!raw) throw new CpioFormatError(`archive ends at offset ${offset} without a ${TRAILER_NAME} entry`);
    let header: DecodedHeader;
    try {
      header = decodeHeader(raw);
    } catch (err) {
      throw new CpioFormatError((err as CpioFormatError).message.replace(/offset (\d+)/, (_, o: string) => `offset ${offset + Number(o)}`));
    }
    if (header.namesize < 1) throw new CpioFormatError(`entry at offset ${offset} has namesize 0`);
    const nameField = await q.take(header.namesize + pad4(HEADER_SIZE + header.namesize));
    if (!nameField) throw new CpioFormatError(`archive truncated in the name of the entry at offset ${offset}`);
    if (nameField[header.namesize - 1] !== 0) throw new CpioFormatError(`name of the entry at offset ${offset} is not NUL-terminated`);
    const nameBytes = Buffer.from(nameField.subarray(0, header.namesize - 1));
    const name = nameBytes.toString('utf8');
    if (name === TRAILER_NAME) {
      if (!(await q.restIsZeros())) throw new CpioFormatError(`data after the ${TRAILER_NAME} entry is not NUL padding`);
      return;
    }
    const parts: Buffer[] | undefined = collect(header, name) ? [] : undefined;
    const info = { name, header };
    const ok = await q.pass(header.filesize, (piece) => {
      if (parts) parts.push(Buffer.from(piece));
      opts.onData?.(info, piece);
    });
    if (!ok) throw new CpioFormatError(`archive truncated in the data of ${name} (offset ${offset})`);
    const pad = pad4(header.filesize);
    const padBytes = pad ? await q.take(pad) : Buffer.alloc(0);
    if (!padBytes) throw new CpioFormatError(`archive truncated after the data of ${name}`);
    const entry: ReadEntry = { name, nameBytes, kind: kindOfMode(header.mode), header, offset };
    if (parts) entry.data = Buffer.concat(parts);
    yield entry;
  }
}

/** Convenience for tests and small archives: every entry of an in-memory archive. */
export async function readNewcBuffer(archive: Buffer, opts: ReadOptions = {}): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  async function* one() {
    yield archive;
  }
  for await (const e of readNewc(one(), { collect: () => true, ...opts })) out.push(e);
  return out;
}
