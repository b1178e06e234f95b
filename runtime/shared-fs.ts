/**
 * The sandbox's shared directory, as kata-runtime lays it out for
 * shared_fs = "virtio-9p": <base>/<sandbox-id>/shared on the host, exported
 * to the guest with tag kataShared and mounted there at
 * /run/kata-containers/shared/containers/. A container's rootfs appears as
 * <cid>/rootfs, a host bind mount's source as <cid>-<n>-<name>. As root the
 * host paths are bind-mounted in (read-only where asked); otherwise copied.
 * Cleanup unmounts before it removes anything, so a failed unmount never
 * deletes the user's files.
 */
import { constants } from 'node:fs';
import { access, cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { run } from '../core/exec.js';
import { warn } from '../core/log.js';

export const KATA_HOST_SHARED_BASE = '/run/kata-containers/shared/sandboxes';
export const KATA_GUEST_SHARED_DIR = '/run/kata-containers/shared/containers';
export const SHARED_FS_TAG = 'kataShared';

/** Where sandboxes' directories go: Kata's path when we may write there, else a private one. */
export async function sharedBase(): Promise<string> {
  if (process.getuid?.() === 0) return KATA_HOST_SHARED_BASE;
  const runtimeDir = process.env.XDG_RUNTIME_DIR;
  if (
    runtimeDir &&
    (await access(runtimeDir, constants.W_OK).then(
      () => true,
      () => false,
    ))
  )
    return join(runtimeDir, 'osbuilder', 'sandboxes');
  return join(tmpdir(), `osbuilder-${process.getuid?.() ?? 'user'}`, 'sandboxes');
}

/** Mount points under `dir` (from /proc/self/mountinfo), deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const unescapeOctal = (p: string) => p.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return text
    .split('\n')
    .map((l) => unescapeOctal(l.split(' ')[4] ?? ''))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

export class SharedDir {
  private binds = process.getuid?.() === 0;
  private shared = 0;

  private constructor(
    /** <base>/<sandbox-id>: removed at cleanup. */
    readonly sandboxDir: string,
    /** What the guest sees as kataShared. */
    readonly path: string,
  ) {}

  static async create(sandboxId: string): Promise<SharedDir> {
    const sandboxDir = join(await sharedBase(), sandboxId);
    if (await stat(sandboxDir).catch(() => undefined)) {
      throw new OsbuilderError(
        'OUTPUT_EXISTS',
        `sandbox directory ${sandboxDir} exists already`,
        'another VM with this name runs, or one was killed: remove it (after unmounting what is mounted there)',
      );
    }
    const path = join(sandboxDir, 'shared');
    await mkdir(path, { recursive: true, mode: 0o750 });
    return new SharedDir(sandboxDir, path);
  }

  /** Shares a host directory or file as `name` in the shared dir; returns its path in the guest. */
  async share(hostPath: string, name: string, opts: { readonly?: boolean } = {}): Promise<string> {
    const st = await stat(hostPath).catch(() => undefined);
    if (!st) throw new OsbuilderError('INPUT_NOT_FOUND', `${hostPath} does not exist`, 'give an existing path');
    const target = join(this.path, name);
    await mkdir(st.isDirectory() ? target : join(target, '..'), { recursive: true });
    if (!st.isDirectory()) await writeFile(target, '');
    if (this.binds) {
      await run('mount', ['--bind', hostPath, target], { hint: 'sharing needs mount(8) and root' });
      if (opts.readonly) await run('mount', ['-o', 'remount,bind,ro', target], { hint: 'sharing needs mount(8) and root' });
    } else {
      await cp(hostPath, target, { recursive: true, verbatimSymlinks: true, force: true, preserveTimestamps: true });
    }
    this.shared++;
    return `${KATA_GUEST_SHARED_DIR}/${name}`;
  }

  /** A container's rootfs, as kata-runtime shares it: <cid>/rootfs. */
  shareRootfs(containerId: string, hostRootfs: string, readonly: boolean): Promise<string> {
    return this.share(hostRootfs, `${containerId}/rootfs`, { readonly });
  }

  /** A host path a container bind-mounts: <cid>-<n>-<name>. */
  shareMountSource(containerId: string, hostPath: string): Promise<string> {
    return this.share(hostPath, `${containerId}-${this.shared}-${basename(hostPath) || 'root'}`);
  }

  /** Unmounts everything shared, then removes the sandbox directory (not if something stays mounted). */
  async cleanup(): Promise<void> {
    for (const m of await mountsUnder(this.sandboxDir)) {
      await run('umount', [m]).catch(() => run('umount', ['-l', m]).catch(() => undefined));
    }
    const left = await mountsUnder(this.sandboxDir);
    if (left.length) {
      warn(`${left.join(', ')} could not be unmounted: ${this.sandboxDir} is left in place`);
      return;
    }
    await rm(this.sandboxDir, { recursive: true, force: true });
  }
}
