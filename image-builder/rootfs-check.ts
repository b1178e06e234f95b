/**
 * What the rootfs must hold to boot as a Kata guest (Kata's check_rootfs):
 * an init — /sbin/init, or systemd at /lib/systemd/systemd or
 * /usr/lib/systemd/systemd — and the agent at /usr/bin/kata-agent. Symlinks
 * are resolved inside the rootfs (an absolute target starts at its root).
 */
import { stat } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { SafeRoot } from '../core/fs-safe.js';

export const INIT_PATHS = ['/sbin/init', '/lib/systemd/systemd', '/usr/lib/systemd/systemd'];
export const AGENT_PATH = '/usr/bin/kata-agent';

export async function checkRootfsDir(rootfs: string, output: string): Promise<void> {
  const st = await stat(rootfs).catch(() => undefined);
  if (!st) throw new OsbuilderError('INPUT_NOT_FOUND', `rootfs ${rootfs} does not exist`, 'build one first: osbuilder rootfs <distro> -o <dir>');
  if (!st.isDirectory())
    throw new OsbuilderError('INPUT_INVALID', `rootfs ${rootfs} is not a directory`, 'give the rootfs directory made by osbuilder rootfs, not a file');
  const rel = relative(resolve(rootfs), resolve(output));
  if (!rel.startsWith('..') && rel !== '') {
    throw new OsbuilderError(
      'OUTPUT_INVALID',
      `output ${output} is inside the rootfs ${rootfs}`,
      'write the image outside the rootfs, or it would copy itself into the image',
    );
  }
}

interface Found {
  path: string;
  resolved: string;
}

async function executable(root: SafeRoot, path: string): Promise<Found | { path: string; problem: string }> {
  const link = await root.lstat(path);
  if (!link) return { path, problem: 'missing' };
  const st = await root.stat(path);
  const resolved = st ? await root.realpath(path) : path;
  if (!st) return { path, problem: 'a dangling symlink' };
  if (!st.isFile()) return { path, problem: `not a regular file (resolves to ${resolved})` };
  if ((st.mode & 0o111) === 0) return { path, problem: `not executable (resolves to ${resolved}, mode ${(st.mode & 0o7777).toString(8)})` };
  return { path, resolved };
}

export interface RootfsContent {
  init: Found;
  agent: Found;
}

export async function checkRootfsContent(rootfs: string): Promise<RootfsContent> {
  const root = await SafeRoot.open(rootfs);
  try {
    let init: Found | undefined;
    const problems: string[] = [];
    for (const p of INIT_PATHS) {
      const r = await executable(root, p);
      if ('resolved' in r) {
        init = r;
        break;
      }
      problems.push(`${p} is ${r.problem}`);
    }
    if (!init) {
      throw new OsbuilderError(
        'MISSING_INIT',
        `rootfs ${rootfs} has no init: ${problems.join('; ')}`,
        'build the rootfs with systemd or with the agent as init (osbuilder rootfs --agent-init), or pass --skip-agent-check for a bare image',
      );
    }
    const agent = await executable(root, AGENT_PATH);
    if (!('resolved' in agent)) {
      throw new OsbuilderError(
        'MISSING_AGENT',
        `rootfs ${rootfs} has no agent: ${AGENT_PATH} is ${agent.problem}`,
        'build the rootfs with osbuilder rootfs (it installs the agent), or pass --skip-agent-check for a bare image',
      );
    }
    return { init, agent };
  } finally {
    await root.close();
  }
}
