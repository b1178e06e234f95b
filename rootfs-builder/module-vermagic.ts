/**
 * Kernel modules given to a rootfs must be built for the kernel their
 * directory names: each module's vermagic (the .modinfo string the kernel
 * checks at load time) starts with that release. A module built against
 * another kernel is refused here, naming both, instead of failing to load
 * in the guest.
 */
import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { OsbuilderError } from '../core/errors.js';

const MODULE_FILE = /\.ko(\.gz|\.xz|\.zst)?$/;
const KEY = Buffer.from('vermagic=');

/** The vermagic string of a module's bytes (its .modinfo entry), or undefined. */
export function vermagicOf(bytes: Buffer): string | undefined {
  for (let at = bytes.indexOf(KEY); at >= 0; at = bytes.indexOf(KEY, at + 1)) {
    if (at > 0 && bytes[at - 1] !== 0) continue;
    const start = at + KEY.length;
    const end = bytes.indexOf(0, start);
    return bytes.subarray(start, end < 0 ? bytes.length : end).toString('latin1');
  }
  return undefined;
}

async function moduleBytes(path: string): Promise<Buffer> {
  const ext = MODULE_FILE.exec(path)?.[1];
  if (!ext) return readFile(path);
  if (ext === '.gz') return gunzipSync(await readFile(path));
  const tool = ext === '.xz' ? 'xz' : 'zstd';
  const r = await execa(tool, ['-dc', path], { encoding: 'buffer', reject: false });
  if (r.exitCode !== 0)
    throw new OsbuilderError(
      'INPUT_INVALID',
      `cannot decompress kernel module ${path} with ${tool}: ${Buffer.from(r.stderr).toString().trim()}`,
      `install ${tool}`,
    );
  return Buffer.from(r.stdout);
}

async function moduleFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await moduleFiles(p)));
    else if (e.isFile() && MODULE_FILE.test(e.name)) out.push(p);
  }
  return out;
}

/** Refuses modules under `dir` whose vermagic is not for kernel `kver`; returns how many were checked. */
export async function checkModulesVermagic(dir: string, kver: string): Promise<number> {
  const bad: string[] = [];
  const files = await moduleFiles(dir);
  for (const f of files) {
    const magic = vermagicOf(await moduleBytes(f));
    const name = relative(dir, f);
    if (magic === undefined) bad.push(`${name} has no vermagic: it is not a kernel module`);
    else if (magic.split(' ')[0] !== kver) bad.push(`${name} was built for kernel ${magic.split(' ')[0]} (vermagic "${magic.trim()}"), not ${kver}`);
  }
  if (bad.length)
    throw new OsbuilderError(
      'INPUT_INVALID',
      `kernel modules in ${dir} do not match kernel ${kver}: ${bad.slice(0, 3).join('; ')}${bad.length > 3 ? ` (and ${bad.length - 3} more)` : ''}`,
      `build them against ${kver}'s kernel-devel (the linux-headers-${kver} tarball osbuilder installs under kernel-devel/), or name the directory after the kernel they are for`,
    );
  return files.length;
}
