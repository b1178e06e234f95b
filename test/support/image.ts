/**
 * Fixtures and readers for image tests: a Debian minbase tree made bootable
 * for the init/agent checks (cached), the nvdimm sources of linux-source-6.1
 * (cached), and a content digest of a tree that an image's copy can match.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cached, debianMinbaseRootfs } from './fixtures.js';
import { MiB } from '../../core/vocab.js';

export const STAND_IN_AGENT = '#!/bin/sh\n# stand-in for the agent: image tests check layout, they do not boot\nexec sleep infinity\n';

/** Debian bookworm minbase plus /usr/bin/kata-agent (a stand-in) and /sbin/init -> it (agent-as-init layout). */
export async function debianKataRootfs(): Promise<string> {
  const minbase = await debianMinbaseRootfs();
  return cached('debian-minbase-bookworm-kata', async (dir) => {
    await execa('cp', ['-a', `${minbase}/.`, dir]);
    await writeFile(join(dir, 'usr/bin/kata-agent'), STAND_IN_AGENT, { mode: 0o755 });
    await mkdir(join(dir, 'sbin'), { recursive: true });
    await symlink('/usr/bin/kata-agent', join(dir, 'sbin/init'));
  });
}

/** drivers/nvdimm/{pfn.h,nd.h,core.c,claim.c,pfn_devs.c} from Debian's linux-source-6.1 tarball. */
export async function nvdimmKernelSources(): Promise<string> {
  const files = ['pfn.h', 'nd.h', 'core.c', 'claim.c', 'pfn_devs.c'].map((f) => `linux-source-6.1/drivers/nvdimm/${f}`);
  const dir = await cached('linux-source-6.1-nvdimm', async (d) => {
    await execa('tar', ['-xJf', '/usr/src/linux-source-6.1.tar.xz', '-C', d, ...files]);
  });
  return join(dir, 'linux-source-6.1/drivers/nvdimm');
}

/**
 * One line per entry: path, type, permissions, owner, size and sha256 or link
 * target (no timestamps: with SOURCE_DATE_EPOCH the image clamps them).
 */
export async function contentDigest(root: string, opts: { skip?: (rel: string) => boolean; permMask?: number } = {}): Promise<string[]> {
  const mask = opts.permMask ?? 0o7777;
  const lines: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const r = `${rel}/${name}`;
      if (opts.skip?.(r)) continue;
      const p = join(dir, name);
      const st = await lstat(p);
      const head = `${r} ${(st.mode & 0o170000).toString(8)} ${(st.mode & mask).toString(8)} ${st.uid}:${st.gid}`;
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

/** Copies `length` bytes from `offset` of `image` into a new file (dd), for tools without an offset option. */
export async function extract(image: string, offset: number, length: number, out: string): Promise<string> {
  await execa('dd', [`if=${image}`, `of=${out}`, 'bs=1M', `skip=${offset / MiB}`, `count=${length / MiB}`, 'conv=sparse', 'status=none']);
  return out;
}

export async function sha256Of(path: string): Promise<string> {
  const r = await execa('sha256sum', [path]);
  return String(r.stdout).split(' ')[0]!;
}
