/**
 * Helpers for rootfs integration tests: a stand-in agent, a digest of a whole
 * tree (for reproducibility), and importing a rootfs as a container image.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFile, chmod, lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cached } from './fixtures.js';

/**
 * A static x86_64 ELF standing in for the agent where a test checks layout,
 * not the agent itself: Debian's busybox-static.
 */
export async function standInAgent(): Promise<string> {
  const dir = await cached('rootfs-stand-in-agent', async (d) => {
    await copyFile('/bin/busybox', join(d, 'stand-in-agent'));
    await chmod(join(d, 'stand-in-agent'), 0o755);
  });
  return join(dir, 'stand-in-agent');
}

/** One line per entry: path, type, mode, owner, mtime, size and content hash or link target. */
export async function treeDigest(root: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = await lstat(p);
      const head = `${r} ${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)}`;
      if (st.isSymbolicLink()) lines.push(`${head} -> ${await readlink(p)}`);
      else if (st.isFile())
        lines.push(
          `${head} ${st.size} ${createHash('sha256')
            .update(await readFile(p))
            .digest('hex')}`,
        );
      else if (st.isDirectory()) {
        lines.push(head);
        await walk(p, r);
      } else lines.push(`${head} rdev=${st.rdev}`);
    }
  };
  await walk(root, '');
  return lines;
}

/** tar of the rootfs piped into `docker import`, so a container can look inside it. */
export async function importRootfs(root: string, tag: string): Promise<string> {
  const tar = execa('tar', ['-C', root, '--numeric-owner', '-c', '.'], { buffer: { stdout: false } });
  const imp = execa('docker', ['import', '-', tag], { stdin: 'pipe' });
  tar.stdout!.pipe(imp.stdin!);
  await Promise.all([tar, imp]);
  return tag;
}

/** Containers carrying the label our rootfs builds put on them, for one CLI process. */
export async function buildContainers(pid: number): Promise<string[]> {
  const r = await execa('docker', ['ps', '-a', '--filter', `label=org.osbuilder.build=${pid}`, '--format', '{{.Names}}']);
  return String(r.stdout).split('\n').filter(Boolean);
}

/** Volumes carrying that label (the engine-side tree of a rootfs build), for one CLI process. */
export async function buildVolumes(pid: number): Promise<string[]> {
  const r = await execa('docker', ['volume', 'ls', '-q', '--filter', `label=org.osbuilder.build=${pid}`]);
  return String(r.stdout).split('\n').filter(Boolean);
}

/** `npm run build` (tsc, then the assets), so CLI-driven suites never test a stale dist/. */
export async function buildDist(): Promise<void> {
  const cwd = fileURLToPath(new URL('../../', import.meta.url));
  await execa('npx', ['tsc', '-p', 'tsconfig.json'], { cwd });
  await execa('node', ['scripts/copy-assets.mjs'], { cwd });
}
