/**
 * Compressors for the initrd, run as real binaries in a pipe (they use other
 * cores while we read the rootfs), with the options the kernel's decompressors
 * (lib/decompress_*.c, selected by CONFIG_RD_*) need.
 */
import { OsbuilderError } from '../core/errors.js';

export type Compression = 'zstd' | 'gzip' | 'xz' | 'lz4' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'xz', 'lz4', 'none'];

/**
 * Default: zstd -3 with all cores (-T0). Measured with bench/initrd.mjs on the
 * Debian bookworm minbase tree (216 MB of archive, 2 busy cores): Kata's
 * `find . | cpio -H newc -o | gzip -9` takes 32 s for 72.1 MB; ours with zstd -3
 * takes 4.2 s, read-back verification included (7.6x faster), for 62.4 MB (0.87x).
 * zstd -1 saves about a second but is already larger than gzip -9 (72.5 MB);
 * zstd -9 saves another 11 % (55.4 MB) but takes 10.7 s, only 3x faster than
 * the baseline. The kernel unpacks every level at the same speed, so -3 is the
 * sweet spot: clearly smaller than gzip -9, with room to spare on the 4x goal.
 */
export const DEFAULT_COMPRESSION: Compression = 'zstd';

/** Kernel options that let the kernel unpack an initrd compressed with each codec. */
export const KERNEL_INITRD_CONFIG = 'CONFIG_BLK_DEV_INITRD';
export const KERNEL_DECOMPRESSOR_CONFIG: Readonly<Record<Compression, string | undefined>> = {
  zstd: 'CONFIG_RD_ZSTD',
  gzip: 'CONFIG_RD_GZIP',
  xz: 'CONFIG_RD_XZ',
  lz4: 'CONFIG_RD_LZ4',
  none: undefined,
};

/** Every kernel option an initrd with this compression needs (=y). */
export function kernelConfigFor(compression: Compression): string[] {
  const rd = KERNEL_DECOMPRESSOR_CONFIG[compression];
  return rd ? [KERNEL_INITRD_CONFIG, rd] : [KERNEL_INITRD_CONFIG];
}

export interface CodecSpec {
  levels: { min: number; max: number; default: number };
  /** Tools tried in order; the first found compresses. */
  tools: string[];
  /** Compress stdin to stdout. */
  compress(tool: string, level: number): string[];
  /** Decompress `path` to stdout. */
  decompress(tool: string, path: string): string[];
}

export const CODECS: Readonly<Record<Exclude<Compression, 'none'>, CodecSpec>> = {
  // -T0: one worker per core; zstd's multi-threaded output does not depend on the
  // number of workers, so builds stay reproducible across machines. No --ultra (20-22):
  // their windows cost the kernel's decompressor up to 128 MiB.
  zstd: {
    levels: { min: 1, max: 19, default: 3 },
    tools: ['zstd'],
    compress: (_t, level) => ['-q', '-c', `-${level}`, '-T0'],
    decompress: (_t, path) => ['-q', '-d', '-c', '--', path],
  },
  // pigz when installed (parallel, same format; its bytes do not depend on its thread count but
  // differ from gzip's, so reproducible builds need the same tool); -n: no name or time in the header.
  gzip: {
    levels: { min: 1, max: 9, default: 9 },
    tools: ['pigz', 'gzip'],
    compress: (_t, level) => ['-c', '-n', `-${level}`],
    decompress: (_t, path) => ['-d', '-c', '--', path],
  },
  // The kernel's XZ decoder checks CRC32 or nothing, not xz's default CRC64
  // (Documentation/staging/xz.rst; usr/Makefile uses --check=crc32); it reads
  // multi-block streams. -T0: xz >= 5.4 always uses its multi-threaded
  // compressor then, whose blocks (3 x dict size) and bytes do not depend on the
  // number of threads (xz 5.2 fell back to single-threaded on one core).
  xz: {
    levels: { min: 0, max: 9, default: 6 },
    tools: ['xz'],
    compress: (_t, level) => ['-c', `-${level}`, '--check=crc32', '-T0'],
    decompress: (_t, path) => ['-d', '-c', '--', path],
  },
  // The kernel's unlz4 reads only the legacy frame format (-l), as usr/Makefile writes it.
  lz4: {
    levels: { min: 1, max: 12, default: 9 },
    tools: ['lz4'],
    compress: (_t, level) => ['-l', '-c', `-${level}`],
    decompress: (_t, path) => ['-d', '-c', '--', path],
  },
};

export function isCompression(value: string): value is Compression {
  return (COMPRESSIONS as readonly string[]).includes(value);
}

/** Validates --compression/--level; returns the level to use (undefined for none). */
export function resolveCompression(compression: string, level: number | undefined): { compression: Compression; level: number | undefined } {
  if (!isCompression(compression)) {
    throw new OsbuilderError('USAGE', `unknown compression "${compression}"`, `use one of: ${COMPRESSIONS.join(', ')} (default ${DEFAULT_COMPRESSION})`);
  }
  if (compression === 'none') {
    if (level !== undefined) throw new OsbuilderError('USAGE', '--level makes no sense with --compression none', 'drop --level, or choose a compression');
    return { compression, level: undefined };
  }
  const { min, max, default: def } = CODECS[compression].levels;
  if (level === undefined) return { compression, level: def };
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new OsbuilderError(
      'USAGE',
      `--level ${level} is not valid for ${compression}`,
      `${compression} levels are whole numbers from ${min} to ${max} (default ${def})`,
    );
  }
  return { compression, level };
}
