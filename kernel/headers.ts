/**
 * The kernel-devel tarball external modules (the NVIDIA driver) build against:
 * the same file selection as the kernel's own Debian headers package
 * (scripts/package/builddeb deploy_kernel_headers) — top and arch Makefiles,
 * include/, scripts/ (with the host programs modules_prepare built), the arch's
 * include and scripts dirs, objtool, Module.symvers when the modules were built,
 * and .config — packed reproducibly (sorted, owner 0, fixed mtime) as
 * linux-headers-<release>/… so `make -C linux-headers-<release> M=… modules` works.
 */
import { createWriteStream } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar';
import { OsbuilderError } from '../core/errors.js';
import { ARCH_FACTS, type Arch } from '../core/arch.js';

async function walk(root: string, rel: string, out: Set<string>, keep: (rel: string, isDir: boolean) => boolean = () => true): Promise<void> {
  const abs = join(root, rel);
  const st = await lstat(abs).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) {
    for (const e of await readdir(abs)) {
      const child = rel ? `${rel}/${e}` : e;
      if (keep(child, true)) await walk(root, child, out, keep);
    }
  } else if ((st.isFile() || st.isSymbolicLink()) && keep(rel, false)) out.add(rel);
}

/** Relative paths to pack (sorted). */
export async function headerFiles(tree: string, arch: Arch): Promise<string[]> {
  const src = ARCH_FACTS[arch].srcarch;
  const out = new Set<string>();
  const notScratch = (rel: string) => !rel.split('/').some((p) => p === '.osbuilder' || p === '.git');
  for (const dir of ['.', `arch/${src}`]) {
    for (const e of await readdir(join(tree, dir)).catch(() => [] as string[])) {
      if (e.startsWith('Makefile')) out.add(dir === '.' ? e : `${dir}/${e}`);
    }
  }
  await walk(tree, 'include', out, notScratch);
  await walk(tree, 'scripts', out, notScratch);
  await walk(tree, `arch/${src}`, out, (rel, isDir) => (isDir ? true : /(^|\/)(Kbuild\.platforms|Platform)$/.test(rel)));
  // every include/ and scripts/ directory below arch/<src>
  const archDirs = new Set<string>();
  await walk(tree, `arch/${src}`, archDirs, () => true);
  const subtrees = new Set<string>();
  for (const f of archDirs) {
    const m = /^(arch\/[^/]+\/(?:.*\/)?(?:include|scripts))\//.exec(f);
    if (m) subtrees.add(m[1]!);
  }
  for (const f of archDirs) for (const s of subtrees) if (f.startsWith(`${s}/`)) out.add(f);
  for (const extra of ['tools/objtool/objtool', 'Module.symvers', '.config']) {
    if (await lstat(join(tree, extra)).catch(() => undefined)) out.add(extra);
  }
  return [...out].filter(notScratch).sort();
}

export async function kernelRelease(tree: string): Promise<string> {
  const r = await readFile(join(tree, 'include/config/kernel.release'), 'utf8').catch(() => undefined);
  if (!r?.trim())
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `${tree}/include/config/kernel.release is missing`,
      'the build did not run prepare: rerun osbuilder kernel build',
    );
  return r.trim();
}

/** Writes the tarball (caller makes it atomic). */
export async function writeHeadersTarball(
  tree: string,
  arch: Arch,
  release: string,
  dest: string,
  mtime: Date,
): Promise<{ files: number; hasSymvers: boolean }> {
  const files = await headerFiles(tree, arch);
  if (!files.includes('.config') || !files.includes('scripts/basic/fixdep')) {
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `${tree} is not prepared for external modules (no scripts/basic/fixdep or .config)`,
      'run the build (make modules_prepare) first',
    );
  }
  const prefix = `linux-headers-${release}`;
  const stream = tar.c(
    {
      cwd: tree,
      portable: true,
      noDirRecurse: true,
      mtime,
      prefix,
      follow: false,
    },
    files,
  );
  await pipeline(stream as unknown as NodeJS.ReadableStream, createGzip({ level: 6 }), createWriteStream(dest));
  return { files: files.length, hasSymvers: files.includes('Module.symvers') };
}
