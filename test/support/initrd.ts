/**
 * Helpers for the initrd tests: an independent walk of a tree (the order GNU
 * cpio must be fed to match ours), real decompression and `cpio` runs, a tree
 * snapshot to compare an extraction with its source, and a QEMU boot.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { writeFile, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cached, debianMinbaseRootfs } from './fixtures.js';

export const INIT_MARKER = 'OSBUILDER-INIT-OK';

/**
 * The Debian minbase tree plus an /init script printing the marker (a copy:
 * the shared fixture stays untouched). When /init exits the kernel panics, and
 * with panic=-1 -no-reboot QEMU stops.
 */
export async function debianMinbaseWithInit(): Promise<string> {
  const src = await debianMinbaseRootfs();
  return cached('debian-minbase-bookworm-init', async (dir) => {
    await execa('cp', ['-a', '--', `${src}/.`, dir]);
    await writeFile(join(dir, 'init'), `#!/bin/sh\necho ${INIT_MARKER}\n`, { mode: 0o755 });
  });
}

/** Depth-first, each directory's names sorted bytewise; "." first, no "./" prefix. */
export function dfsOrder(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    out.push(rel);
    const names = readdirSync(join(root, rel), { encoding: 'buffer' })
      .sort(Buffer.compare)
      .map((b) => b.toString('utf8'));
    for (const n of names) {
      const r = rel === '.' ? n : `${rel}/${n}`;
      if (lstatSync(join(root, r)).isDirectory()) visit(r);
      else out.push(r);
    }
  };
  visit('.');
  return out;
}

const DECOMPRESS: Record<string, string[] | undefined> = {
  zstd: ['zstd', '-d', '-c', '-q'],
  gzip: ['gzip', '-d', '-c'],
  xz: ['xz', '-d', '-c'],
  lz4: ['lz4', '-d', '-c'],
  none: undefined,
};

/** Decompresses `file` with the real tool into `out` (a plain newc archive). */
export async function decompressTo(file: string, compression: string, out: string): Promise<void> {
  const argv = DECOMPRESS[compression];
  if (!argv) {
    await execa('cp', [file, out]);
    return;
  }
  // A shell redirect: execa's { file } target still buffers the output in memory.
  await execa('sh', ['-c', '"$@" > "$0"', out, ...argv, '--', file]);
}

/** `cpio -it` names, in archive order. */
export async function cpioList(archive: string): Promise<string[]> {
  const r = await execa('cpio', ['-i', '-t', '--quiet'], { inputFile: archive });
  return String(r.stdout)
    .split('\n')
    .filter((l) => l !== '');
}

/** `cpio -idm` into `dir` (as root: owners restored too). */
export async function cpioExtract(archive: string, dir: string): Promise<void> {
  await execa('cpio', ['-i', '-d', '-m', '--quiet', '--no-absolute-filenames'], { inputFile: archive, cwd: dir });
}

export interface NodeInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  target?: string;
  sha256?: string;
  rdev?: number;
  mtime?: number;
}

/** Every entry below `root`: type, mode, owner, contents hash, link target, device (file mtimes optional). */
export async function snapshot(root: string, opts: { mtimes?: boolean } = {}): Promise<Map<string, NodeInfo>> {
  const out = new Map<string, NodeInfo>();
  const visit = async (rel: string) => {
    const p = join(root, rel);
    const st = await lstat(p);
    const info: NodeInfo = { type: '', mode: st.mode, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) info.type = 'dir';
    else if (st.isSymbolicLink()) Object.assign(info, { type: 'symlink', target: await readlink(p) });
    else if (st.isFile())
      Object.assign(info, {
        type: 'file',
        size: st.size,
        sha256: createHash('sha256')
          .update(await readFile(p))
          .digest('hex'),
      });
    else if (st.isCharacterDevice() || st.isBlockDevice()) Object.assign(info, { type: 'dev', rdev: st.rdev });
    else info.type = st.isFIFO() ? 'fifo' : 'socket';
    if (opts.mtimes && info.type === 'file') info.mtime = Math.floor(st.mtimeMs / 1000);
    out.set(rel, info);
    if (st.isDirectory()) for (const n of (await readdir(p)).sort()) await visit(rel === '.' ? n : `${rel}/${n}`);
  };
  await visit('.');
  return out;
}

export interface BootResult {
  output: string;
  markerSeen: boolean;
}

/**
 * Boots `kernel` with `initrd` under TCG and returns the console output; QEMU
 * is killed on timeout and always reaped.
 */
export async function bootInitrd(kernel: string, initrd: string, opts: { memoryMiB?: number; timeoutMs?: number } = {}): Promise<BootResult> {
  const qemu = execa(
    'qemu-system-x86_64',
    [
      '-accel',
      'tcg',
      '-m',
      String(opts.memoryMiB ?? 512),
      '-nographic',
      '-no-reboot',
      '-kernel',
      kernel,
      '-initrd',
      initrd,
      '-append',
      'console=ttyS0 panic=-1 rdinit=/init',
    ],
    { reject: false, stdin: 'ignore', all: true, timeout: opts.timeoutMs ?? 180_000 },
  );
  try {
    const r = await qemu;
    const output = String(r.all ?? '');
    return { output, markerSeen: output.includes(INIT_MARKER) };
  } finally {
    if (qemu.exitCode === null) qemu.kill('SIGKILL');
  }
}

/** Paths whose info differs between two snapshots (at most `limit`), for a short assertion diff. */
export function snapshotDiff(got: Map<string, NodeInfo>, want: Map<string, NodeInfo>, limit = 20): string[] {
  const out: string[] = [];
  for (const [k, w] of want) {
    const g = got.get(k);
    if (!g) out.push(`missing ${k}`);
    else if (JSON.stringify(g) !== JSON.stringify(w)) out.push(`${k}: got ${JSON.stringify(g)} want ${JSON.stringify(w)}`);
    if (out.length >= limit) return out;
  }
  for (const k of got.keys()) if (!want.has(k) && out.length < limit) out.push(`extra ${k}`);
  return out;
}
