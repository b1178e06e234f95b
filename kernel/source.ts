/**
 * Kernel source: where it comes from (kernel.org by default, a local tarball or
 * a URL), its sha256 (given, or kernel.org's sha256sums.asc), download into the
 * build cache, and safe extraction into a temp directory that is renamed into
 * place only when every entry passed the checks.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { posix, join, basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { start } from '../core/exec.js';
import * as tar from 'tar';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { memoSha256 } from '../core/memo.js';
import { cacheRoot } from '../core/cache.js';
import { atomicOutput } from '../core/atomic.js';
import { onInterrupt } from '../core/cleanup.js';
import { debug } from '../core/log.js';
import { checksumFromSums, kernelOrgSumsUrl, kernelOrgUrl } from './version.js';
import { ownerTag } from '../core/owner.js';

export type Compression = 'xz' | 'gzip';

export interface SourceSpec {
  kind: 'file' | 'url';
  /** Path or URL of the tarball. */
  location: string;
  compression: Compression;
  /** Expected sha256 (lower-case hex), when known before download. */
  sha256?: string;
  /** Where kernel.org publishes the checksum, when no sha256 is given. */
  sumsUrl?: string;
  /** The command's flags for the tarball and its checksum, named in hints. */
  flags: SourceFlags;
}

export interface SourceFlags {
  source: string;
  sha256: string;
}

/** `osbuilder kernel setup`'s flags; `osbuilder build` has its own (--kernel-source, --kernel-sha256). */
export const SETUP_FLAGS: SourceFlags = { source: '--source', sha256: '--sha256' };

function compressionOf(name: string): Compression {
  if (/\.tar\.xz$|\.txz$/.test(name)) return 'xz';
  if (/\.tar\.gz$|\.tgz$/.test(name)) return 'gzip';
  throw new OsbuilderError('INPUT_INVALID', `${name} is not a .tar.xz or .tar.gz tarball`, 'give a kernel tarball ending in .tar.xz or .tar.gz');
}

export function normaliseSha256(hex: string | undefined, flag = '--sha256'): string | undefined {
  if (hex === undefined) return undefined;
  const h = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(h))
    throw new OsbuilderError('INPUT_INVALID', `${flag} ${JSON.stringify(hex)} is not 64 hex digits`, 'pass the tarball sha256, e.g. from sha256sum');
  return h;
}

/** Plans where the source comes from (pure). */
export function planSource(opts: { version?: string; source?: string; sha256?: string; mirror?: string; flags?: SourceFlags }): SourceSpec {
  const flags = opts.flags ?? SETUP_FLAGS;
  const sha = normaliseSha256(opts.sha256, flags.sha256);
  if (opts.source) {
    const isUrl = /^https?:\/\//.test(opts.source);
    const name = isUrl ? new URL(opts.source).pathname : opts.source;
    return { kind: isUrl ? 'url' : 'file', location: opts.source, compression: compressionOf(name), sha256: sha, flags };
  }
  if (!opts.version) throw new OsbuilderError('USAGE', `a kernel version (-v) or ${flags.source} is required`, 'e.g. osbuilder kernel setup -v 6.1.62');
  // OSBUILDER_KERNEL_MIRROR: a kernel.org mirror with the same layout (v6.x/linux-….tar.xz, sha256sums.asc).
  const mirror = opts.mirror ?? (process.env.OSBUILDER_KERNEL_MIRROR || undefined);
  const url = kernelOrgUrl(opts.version, mirror);
  return { kind: 'url', location: url, compression: 'xz', sha256: sha, sumsUrl: sha ? undefined : kernelOrgSumsUrl(opts.version, mirror), flags };
}

async function download(url: string, dest: string, flags: SourceFlags): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new OsbuilderError(
      'DOWNLOAD_FAILED',
      `cannot download ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      `check the network or proxy, or download the tarball yourself and pass ${flags.source} <file> ${flags.sha256} <hex>`,
    );
  }
  if (!res.ok || !res.body) {
    throw new OsbuilderError(
      'DOWNLOAD_FAILED',
      `cannot download ${url}: HTTP ${res.status}`,
      `check the version exists on kernel.org, or pass ${flags.source} <file|url>`,
    );
  }
  await atomicOutput(dest, async (tmp) => {
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(tmp));
  });
}

async function fetchText(url: string, flags: SourceFlags): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new OsbuilderError(
      'DOWNLOAD_FAILED',
      `cannot download ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      `check the network, or pass ${flags.sha256} <hex> (and ${flags.source} <file>) yourself`,
    );
  }
  if (!res.ok) throw new OsbuilderError('DOWNLOAD_FAILED', `cannot download ${url}: HTTP ${res.status}`, `pass ${flags.sha256} <hex> yourself`);
  return res.text();
}

export interface ObtainedSource {
  tarball: string;
  sha256: string;
  compression: Compression;
  origin: string;
  /** True when a checksum was known and matched (false: none was known, it was computed). */
  verified: boolean;
}

/** Makes the tarball available locally and checks its sha256; nothing is extracted here. */
export async function obtainSource(spec: SourceSpec, downloadDir = join(cacheRoot(), 'kernel-sources')): Promise<ObtainedSource> {
  let tarball: string;
  let expected = spec.sha256;
  if (spec.kind === 'file') {
    const st = await stat(spec.location).catch(() => undefined);
    if (!st?.isFile())
      throw new OsbuilderError(
        'INPUT_NOT_FOUND',
        `kernel tarball ${spec.location} does not exist`,
        `give the path of a .tar.xz/.tar.gz kernel tarball, or omit ${spec.flags.source} to download from kernel.org`,
      );
    tarball = spec.location;
  } else {
    const name = basename(new URL(spec.location).pathname);
    if (!expected && spec.sumsUrl) {
      const sums = await fetchText(spec.sumsUrl, spec.flags);
      expected = checksumFromSums(sums, name);
      if (!expected)
        throw new OsbuilderError('DOWNLOAD_FAILED', `${spec.sumsUrl} has no checksum for ${name}`, `check the version exists, or pass ${spec.flags.sha256}`);
    }
    await mkdir(downloadDir, { recursive: true });
    tarball = join(downloadDir, name);
    const have = await stat(tarball).catch(() => undefined);
    if (!have || (expected && (await sha256File(tarball)) !== expected)) await download(spec.location, tarball, spec.flags);
  }
  // A tarball unchanged since it was last hashed (stamp: inode, size, mtime, ctime) is not read again.
  const actual = await memoSha256(tarball);
  if (expected && actual !== expected) {
    throw new OsbuilderError(
      'CHECKSUM_MISMATCH',
      `${tarball} has sha256 ${actual}, expected ${expected}`,
      `the tarball is corrupt or not the one you meant: fetch it again or fix ${spec.flags.sha256}; nothing was extracted`,
    );
  }
  return { tarball, sha256: actual, compression: spec.compression, origin: spec.location, verified: expected !== undefined };
}

export interface TarViolation {
  path: string;
  why: string;
}

/**
 * Checks one raw tar entry against the rules: relative path without `..`, one
 * top-level directory, only files/dirs/links, symlinks and hard links that
 * resolve inside that directory. Returns the problem, or undefined.
 */
export function checkTarEntry(rawPath: string, type: string, linkpath: string | undefined, top: string | undefined): { why?: string; top: string } {
  const p = rawPath.replace(/^(\.\/)+/, '');
  const segments = p.split('/').filter((s) => s !== '' && s !== '.');
  const first = segments[0] ?? '';
  const theTop = top ?? first;
  if (rawPath.startsWith('/') || /^[A-Za-z]:/.test(rawPath)) return { why: 'absolute path', top: theTop };
  if (segments.includes('..')) return { why: 'path contains ..', top: theTop };
  if (first !== theTop) return { why: `outside the top-level directory ${theTop}/`, top: theTop };
  const allowed = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'];
  if (!allowed.includes(type)) return { why: `entry type ${type} is not allowed`, top: theTop };
  if (type === 'SymbolicLink') {
    const target = linkpath ?? '';
    if (target.startsWith('/')) return { why: `absolute symlink to ${target}`, top: theTop };
    const resolved = posix.normalize(posix.join(posix.dirname(segments.join('/')), target));
    if (resolved !== theTop && !resolved.startsWith(`${theTop}/`)) return { why: `symlink to ${target} escapes the tree`, top: theTop };
  }
  if (type === 'Link') {
    const target = posix.normalize((linkpath ?? '').replace(/^(\.\/)+/, ''));
    if (target.startsWith('/') || target.split('/').includes('..') || !target.startsWith(`${theTop}/`))
      return { why: `hard link to ${linkpath} escapes the tree`, top: theTop };
  }
  return { top: theTop };
}

/**
 * Removes a tree the unpacker stopped writing: writes already under way when
 * it failed or was aborted still land for a few milliseconds (a plain rm then
 * fails with ENOTEMPTY), so retry until the tree is gone and stays gone.
 */
async function removePartialTree(tmp: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await rm(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface ScanState {
  top?: string;
  entries: number;
  /** Two zero blocks end every tar archive: without them it was cut short (maybe between entries). */
  sawEnd: boolean;
  violations: TarViolation[];
  warnings: string[];
}

/**
 * node-tar's parser used as a checker only (it writes nothing): every entry
 * through checkTarEntry; `onViolation` runs at the first unsafe entry.
 */
function entryChecker(scan: ScanState, onViolation: () => void) {
  const parser = tar.t({
    strict: true,
    filter: (path, entry) => {
      const e = entry as unknown as { type: string; linkpath?: string };
      const r = checkTarEntry(path, e.type, e.linkpath, scan.top);
      scan.top = r.top;
      if (r.why) {
        if (!scan.violations.length) onViolation();
        scan.violations.push({ path, why: r.why });
      } else scan.entries++;
      return false;
    },
    onwarn: (code, message) => scan.warnings.push(`${code}: ${message}`),
  });
  parser.on('eof', () => (scan.sawEnd = true));
  // The parser's end or its error (never rejects).
  const done = new Promise<Error | undefined>((resolve) => {
    parser.on('end', () => resolve(undefined));
    parser.on('error', (err: Error) => resolve(err));
  });
  return { parser, done };
}

/** The decompressor: xz with two threads (Debian's and kernel.org's tarballs are multi-block), or gzip. */
function decompressor(tarball: string, compression: Compression) {
  const argv = compression === 'xz' ? (['xz', ['-dc', '-T2', '--', tarball]] as const) : (['gzip', ['-dc', '--', tarball]] as const);
  return start(argv[0], argv[1], { buffer: { stdout: false }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore', reject: false });
}

/** GNU tar writing the stream it is fed into `tmp`, the top directory stripped. */
function unpacker(tmp: string) {
  return start('tar', ['-x', '-f', '-', '-C', tmp, '--strip-components=1', '--no-same-owner', '--delay-directory-restore'], { stdin: 'pipe', reject: false });
}

type Proc = ReturnType<typeof start>;
type Done = Awaited<Proc>;

interface Passes {
  decompressed: Done;
  parseError: Error | undefined;
  untarred: Done | undefined;
}

/**
 * One decompression feeds both node-tar's checker and GNU tar (the archive is
 * read once, the check overlaps the write). The first unsafe entry kills tar
 * (GNU tar itself refuses `..` and absolute names and writes `..`/absolute
 * symlinks as placeholders until its end, so nothing lands outside `tmp`
 * meanwhile); a parse error stops everything. Resolves once all are reaped.
 */
async function readOnce(tarball: string, compression: Compression, tmp: string, scan: ScanState, setStop: (stop: () => void) => void): Promise<Passes> {
  // biome-ignore lint/style/useConst: killUntar (made first) may run before the unpacker exists
  let untar: Proc | undefined;
  const killUntar = () => {
    if (!untar) return;
    decomp.stdout!.unpipe(untar.stdin!);
    untar.stdin!.destroy();
    untar.kill('SIGKILL');
  };
  const { parser, done } = entryChecker(scan, killUntar);
  const decomp = decompressor(tarball, compression);
  untar = unpacker(tmp);
  untar.stdin!.on('error', () => decomp.stdout!.unpipe(untar!.stdin!));
  decomp.stdout!.pipe(parser as unknown as NodeJS.WritableStream);
  decomp.stdout!.pipe(untar.stdin!);
  const stopAll = () => {
    killUntar();
    decomp.kill('SIGKILL');
  };
  setStop(() => {
    stopAll();
    parser.abort(new OsbuilderError('INTERRUPTED', `extraction of ${tarball} was interrupted`, 'nothing was extracted: run the command again'));
  });
  // A failed parse stops reading: stop the decompressor and tar too instead of leaving them blocked on full pipes.
  void done.then((err) => err && stopAll());
  const [decompressed, parseError, untarred] = await Promise.all([decomp, done, untar]);
  return { decompressed, parseError, untarred };
}

/** The first reason the extraction must be refused, in order: parse, decompress, unsafe entries, no entries, no end, tar. */
function verdict(p: Passes, scan: ScanState, corrupt: (detail: string) => OsbuilderError, tarball: string): OsbuilderError | undefined {
  if ((p.decompressed as { code?: string }).code === 'ENOENT')
    return new OsbuilderError('TOOL_MISSING', `${p.decompressed.command.split(' ')[0]} is not installed`, 'install xz-utils and gzip');
  if (p.parseError) return corrupt(p.parseError.message);
  if (p.decompressed.exitCode !== 0) return corrupt(String(p.decompressed.stderr).trim().split('\n').pop() || `decompressor exit ${p.decompressed.exitCode}`);
  if (scan.violations.length) {
    const v = scan.violations;
    return new OsbuilderError(
      'INPUT_INVALID',
      `${tarball} has unsafe entries (nothing was extracted):\n${v
        .slice(0, 10)
        .map((x) => `  ${x.path}: ${x.why}`)
        .join('\n')}${v.length > 10 ? `\n  … and ${v.length - 10} more` : ''}`,
      'use a genuine kernel source tarball',
    );
  }
  if (!scan.top || scan.entries === 0) return corrupt('no entries');
  if (!scan.sawEnd) return corrupt('it ends without the end-of-archive blocks (truncated)');
  const x = p.untarred;
  if (x && (x as { code?: string }).code === 'ENOENT') return new OsbuilderError('TOOL_MISSING', 'tar is not installed', 'install GNU tar');
  if (!x || x.exitCode !== 0)
    return corrupt(
      String(x?.stderr ?? '')
        .trim()
        .split('\n')
        .pop() || `tar exit ${x?.exitCode}`,
    );
  return undefined;
}

/**
 * Extracts `tarball` into `dest` (which must not exist), stripping the single
 * top-level directory. The archive is decompressed once and fed both to
 * node-tar's parser (every entry through checkTarEntry, the end-of-archive
 * blocks seen; it writes nothing) and to GNU tar, which writes a sibling temp
 * dir; the temp dir is renamed into place only when both finished and every
 * check passed, else removed whole.
 */
export async function extractTarball(tarball: string, compression: Compression, dest: string): Promise<{ topDir: string; entries: number }> {
  const tmp = `${dest}.extract-${ownerTag()}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const scan: ScanState = { entries: 0, sawEnd: false, violations: [], warnings: [] };
  const corrupt = (detail: string) =>
    new OsbuilderError(
      'INPUT_INVALID',
      `${tarball} is not a valid ${compression === 'xz' ? '.tar.xz' : '.tar.gz'} archive: ${detail}`,
      'the download is truncated or damaged: fetch it again (nothing was extracted)',
    );
  const interruption = () => new OsbuilderError('INTERRUPTED', `extraction of ${tarball} was interrupted`, 'nothing was extracted: run the command again');
  // SIGINT/SIGTERM mid-extraction (a kernel tree takes a while): stop unpacking, remove the partial tree.
  let stop = () => {};
  let settled: Promise<unknown> = Promise.resolve();
  let interrupted = false;
  const unregister = onInterrupt(async () => {
    interrupted = true;
    stop();
    await settled;
    await removePartialTree(tmp);
  });
  try {
    const passes = readOnce(tarball, compression, tmp, scan, (s) => (stop = s));
    settled = passes.catch(() => undefined);
    const failure = verdict(await passes, scan, corrupt, tarball);
    if (interrupted) throw interruption();
    if (failure) throw failure;
    if (scan.warnings.length) debug(`tar warnings:\n${scan.warnings.join('\n')}`);
    await rename(tmp, dest);
    return { topDir: scan.top!, entries: scan.entries };
  } catch (err) {
    // Interrupted: the interrupt handler removes the partial tree.
    if (interrupted) throw interruption();
    await removePartialTree(tmp);
    if (err instanceof OsbuilderError) throw err;
    const e = err as { code?: string; message?: string };
    if (e.code?.startsWith('TAR_') || /zlib|incorrect header|unexpected end/i.test(e.message ?? '')) throw corrupt(e.message ?? String(err));
    throw err;
  } finally {
    unregister();
  }
}
