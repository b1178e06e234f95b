/**
 * File operations confined to a root directory (a guest rootfs being built).
 *
 * A rootfs is untrusted data: its `/usr` may be a symlink to `/`, its `/etc` a
 * link to `/tmp/outside`. Every path given here is an in-root path and is
 * resolved one component at a time from an open directory descriptor, the
 * openat(2) idiom that Node reaches through `/proc/self/fd/<fd>/<name>`:
 * symlinks met on the way are resolved *inside* the root (an absolute target
 * restarts at the root, `..` stops at the root), each directory is opened with
 * O_NOFOLLOW before it is entered, and the final component of a write is
 * never followed (a symlink there is replaced, not written through).
 * Linux only (needs /proc).
 */
import { constants, type Stats } from 'node:fs';
import {
  open,
  lstat,
  readlink,
  mkdir,
  symlink as fsSymlink,
  unlink,
  rm,
  readdir,
  lutimes,
  rename,
  readFile as hostReadFile,
  type FileHandle,
} from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { errnoError, OsbuilderError } from './errors.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** Same bound as the kernel's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;

/** Where a walk ended: the open directories from the root down, and the final name. */
type Walked = { stack: Level[]; name: string | undefined };

interface Level {
  handle: FileHandle;
  name: string;
}

function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface WalkEntry {
  /** In-root path, e.g. /usr/bin/env */
  path: string;
  name: string;
  stats: Stats;
}

export class SafeRoot {
  private constructor(
    /** Host path of the root directory. */
    readonly root: string,
    private readonly rootHandle: FileHandle,
  ) {}

  static async open(root: string): Promise<SafeRoot> {
    const abs = resolvePath(root);
    const handle = await open(abs, DIR_FLAGS);
    return new SafeRoot(abs, handle);
  }

  async close(): Promise<void> {
    await this.rootHandle.close();
  }

  /** `/proc/self/fd/<fd>/<name>`: a lookup of `name` inside an open directory. */
  private static at(dirFd: number, name?: string): string {
    return name === undefined ? `/proc/self/fd/${dirFd}` : `/proc/self/fd/${dirFd}/${name}`;
  }

  private async release(stack: Level[]): Promise<void> {
    for (const level of stack.slice(1)) await level.handle.close().catch(() => undefined);
  }

  /**
   * Resolves every component but (unless `followFinal`) the last, inside the
   * root. Returns the open directory chain (root first) and the final name
   * (undefined when the path is the root itself or ends in a followed dir).
   * With `create`, missing intermediate directories are made (mode 0755).
   */
  private async walk(path: string, opts: { create?: boolean; followFinal?: boolean; finalIsDir?: boolean; finalMode?: number }): Promise<Walked> {
    const stack: Level[] = [{ handle: this.rootHandle, name: '' }];
    const queue = splitPath(path);
    let links = 0;
    try {
      while (queue.length > 0) {
        const comp = queue.shift()!;
        const top = stack[stack.length - 1]!;
        if (comp === '..') {
          if (stack.length > 1) {
            await top.handle.close();
            stack.pop();
          }
          continue;
        }
        const last = queue.length === 0;
        if (last && !opts.followFinal && !opts.finalIsDir) return { stack, name: comp };
        const here = SafeRoot.at(top.handle.fd, comp);
        let st: Stats | undefined;
        try {
          st = await lstat(here);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        if (st === undefined) {
          if (last && !opts.finalIsDir) return { stack, name: comp };
          if (!opts.create) throw errnoError('ENOENT', `${path}: ${comp} does not exist in ${this.root}`);
          await mkdir(here, { mode: last && opts.finalMode !== undefined ? opts.finalMode : 0o755 }).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'EEXIST') throw err;
          });
          st = await lstat(here);
        }
        if (st.isSymbolicLink()) {
          if (++links > MAX_SYMLINKS) throw errnoError('ELOOP', `${path}: too many symlinks in ${this.root}`);
          const target = await readlink(here);
          if (target.startsWith('/')) {
            await this.release(stack);
            stack.length = 1;
          }
          queue.unshift(...splitPath(target));
          continue;
        }
        if (st.isDirectory()) {
          const handle = await open(here, DIR_FLAGS);
          stack.push({ handle, name: comp });
          continue;
        }
        if (!last) throw errnoError('ENOTDIR', `${path}: ${comp} is not a directory in ${this.root}`);
        if (opts.finalIsDir) throw errnoError('ENOTDIR', `${path} is not a directory in ${this.root}`);
        return { stack, name: comp };
      }
      return { stack, name: undefined };
    } catch (err) {
      await this.release(stack);
      throw err;
    }
  }

  private static logical(stack: Level[], name?: string): string {
    const parts = stack.slice(1).map((l) => l.name);
    if (name !== undefined) parts.push(name);
    return `/${parts.join('/')}`;
  }

  /** The in-root path `path` resolves to, symlinks followed inside the root. */
  async realpath(path: string): Promise<string> {
    const { stack, name } = await this.walk(path, { followFinal: true });
    try {
      return SafeRoot.logical(stack, name);
    } finally {
      await this.release(stack);
    }
  }

  /** Host path of what `path` resolves to (for tools that need a path; not for writes). */
  async hostPath(path: string): Promise<string> {
    return join(this.root, await this.realpath(path));
  }

  /** lstat of the final component (not followed); undefined when missing. */
  async lstat(path: string): Promise<Stats | undefined> {
    let walked: Walked;
    try {
      walked = await this.walk(path, {});
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
    return this.statAt(walked);
  }

  private async statAt({ stack, name }: { stack: Level[]; name: string | undefined }): Promise<Stats | undefined> {
    try {
      const top = stack[stack.length - 1]!;
      if (name === undefined) return await top.handle.stat();
      return await lstat(SafeRoot.at(top.handle.fd, name)).catch(() => undefined);
    } finally {
      await this.release(stack);
    }
  }

  /** stat with symlinks followed inside the root; undefined when missing or dangling. */
  async stat(path: string): Promise<Stats | undefined> {
    let walked: Walked;
    try {
      walked = await this.walk(path, { followFinal: true });
    } catch (err) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
    return this.statAt(walked);
  }

  async exists(path: string): Promise<boolean> {
    return (await this.stat(path)) !== undefined;
  }

  /** mkdir -p inside the root; existing symlinked directories are followed inside the root. */
  async mkdirp(path: string, mode = 0o755): Promise<void> {
    const { stack } = await this.walk(path, { create: true, finalIsDir: true, finalMode: mode });
    await this.release(stack);
  }

  /**
   * Writes a regular file. Parents are created; a symlink at `path` is
   * replaced, never written through. Mode is applied exactly (no umask).
   */
  async writeFile(path: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
    const { stack, name } = await this.walk(path, { create: true });
    try {
      if (name === undefined) throw errnoError('EISDIR', `${path} is a directory`);
      const top = stack[stack.length - 1]!;
      const target = SafeRoot.at(top.handle.fd, name);
      const st = await lstat(target).catch(() => undefined);
      if (st?.isDirectory()) throw errnoError('EISDIR', `${path} is a directory in ${this.root}`);
      if (st?.isSymbolicLink()) await unlink(target);
      const mode = opts.mode ?? 0o644;
      const fh = await open(target, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
      try {
        await fh.writeFile(data);
        await fh.chmod(mode);
        if (opts.uid !== undefined || opts.gid !== undefined) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
      } finally {
        await fh.close();
      }
    } finally {
      await this.release(stack);
    }
  }

  /** Reads a file, symlinks followed inside the root. */
  async readFile(path: string): Promise<Buffer> {
    const { stack, name } = await this.walk(path, { followFinal: true });
    try {
      if (name === undefined) throw errnoError('EISDIR', `${path} is a directory`);
      const top = stack[stack.length - 1]!;
      const fh = await open(SafeRoot.at(top.handle.fd, name), O_RDONLY | O_NOFOLLOW);
      try {
        return await fh.readFile();
      } finally {
        await fh.close();
      }
    } finally {
      await this.release(stack);
    }
  }

  async readText(path: string): Promise<string | undefined> {
    try {
      return (await this.readFile(path)).toString('utf8');
    } catch (err) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
  }

  /** Copies a host file (trusted source) into the root. */
  async copyIn(hostSource: string, path: string, opts: WriteOptions = {}): Promise<void> {
    await this.writeFile(path, await hostReadFile(hostSource), opts);
  }

  /**
   * Copies a host directory tree (trusted source) to `path` in the root:
   * directories, regular files with their modes, symlinks verbatim.
   */
  async copyTreeIn(hostSource: string, path: string): Promise<number> {
    let files = 0;
    const srcStat = await lstat(hostSource);
    await this.mkdirp(path, srcStat.mode & 0o7777);
    for (const entry of (await readdir(hostSource, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const src = join(hostSource, entry.name);
      const dest = `${path.replace(/\/+$/, '')}/${entry.name}`;
      const st = await lstat(src);
      if (st.isDirectory()) files += await this.copyTreeIn(src, dest);
      else if (st.isSymbolicLink()) await this.symlink(await readlink(src), dest);
      else if (st.isFile()) {
        await this.copyIn(src, dest, { mode: st.mode & 0o7777 });
        files++;
      }
    }
    return files;
  }

  /** Creates (or replaces) a symlink at `path`; the target is stored verbatim, never resolved. */
  async symlink(target: string, path: string): Promise<void> {
    const { stack, name } = await this.walk(path, { create: true });
    try {
      if (name === undefined) throw errnoError('EISDIR', `${path} is a directory`);
      const top = stack[stack.length - 1]!;
      const at = SafeRoot.at(top.handle.fd, name);
      const st = await lstat(at).catch(() => undefined);
      if (st?.isDirectory()) throw errnoError('EISDIR', `${path} is a directory in ${this.root}`);
      if (st) {
        // Create beside and rename over, so the path is never missing.
        const tmp = SafeRoot.at(top.handle.fd, `.${name}.osbuilder-tmp`);
        await unlink(tmp).catch(() => undefined);
        await fsSymlink(target, tmp);
        await rename(tmp, at);
      } else {
        await fsSymlink(target, at);
      }
    } finally {
      await this.release(stack);
    }
  }

  /** Removes `path` (the final component is never followed). Missing paths are fine. */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<boolean> {
    let walked: Walked;
    try {
      walked = await this.walk(path, {});
    } catch (err) {
      if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return false;
      throw err;
    }
    const { stack, name } = walked;
    try {
      if (name === undefined) throw errnoError('EINVAL', `refusing to remove the root of ${this.root}`);
      const top = stack[stack.length - 1]!;
      const at = SafeRoot.at(top.handle.fd, name);
      const st = await lstat(at).catch(() => undefined);
      if (!st) return false;
      if (st.isDirectory()) {
        if (!opts.recursive) throw errnoError('EISDIR', `${path} is a directory in ${this.root}`);
        // rm walks with lstat and unlinks symlinks instead of following them.
        await rm(at, { recursive: true, force: true });
      } else {
        await unlink(at);
      }
      return true;
    } finally {
      await this.release(stack);
    }
  }

  /** Empties a directory (symlinks to it followed inside the root), keeping it (e.g. /var/log). */
  async emptyDir(path: string): Promise<number> {
    const st = await this.stat(path);
    if (!st?.isDirectory()) return 0;
    const { stack } = await this.walk(path, { finalIsDir: true });
    let removed = 0;
    try {
      const dir = SafeRoot.at(stack[stack.length - 1]!.handle.fd);
      for (const entry of await readdir(dir)) {
        await rm(`${dir}/${entry}`, { recursive: true, force: true });
        removed++;
      }
    } finally {
      await this.release(stack);
    }
    return removed;
  }

  /** chmod of what `path` resolves to inside the root. */
  async chmod(path: string, mode: number): Promise<void> {
    const { stack, name } = await this.walk(path, { followFinal: true });
    try {
      const top = stack[stack.length - 1]!;
      if (name === undefined) {
        await top.handle.chmod(mode);
        return;
      }
      const fh = await open(SafeRoot.at(top.handle.fd, name), O_RDONLY | O_NOFOLLOW);
      try {
        await fh.chmod(mode);
      } finally {
        await fh.close();
      }
    } finally {
      await this.release(stack);
    }
  }

  /** Creates `path` only if it does not exist (O_EXCL); returns false when it existed. */
  async createExclusive(path: string, data: string | Uint8Array, mode = 0o644): Promise<boolean> {
    const { stack, name } = await this.walk(path, { create: true });
    try {
      if (name === undefined) return false;
      const top = stack[stack.length - 1]!;
      try {
        const fh = await open(SafeRoot.at(top.handle.fd, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
        try {
          await fh.writeFile(data);
          await fh.chmod(mode);
        } finally {
          await fh.close();
        }
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    } finally {
      await this.release(stack);
    }
  }

  /**
   * Visits every entry under the root (depth first, names sorted), never
   * following a symlink. `visit` may return 'skip' to not descend into a dir.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a visitor that returns nothing means 'descend'
  async walkTree(visit: (entry: WalkEntry) => Promise<void | 'skip'> | void | 'skip', start = '/'): Promise<void> {
    const walkDir = async (dirFd: number, prefix: string): Promise<void> => {
      const names = (await readdir(SafeRoot.at(dirFd))).sort();
      for (const name of names) {
        const at = SafeRoot.at(dirFd, name);
        const stats = await lstat(at).catch(() => undefined);
        if (!stats) continue; // removed by visit meanwhile
        const path = `${prefix}/${name}`;
        const verdict = await visit({ path, name, stats });
        if (verdict === 'skip' || !stats.isDirectory()) continue;
        let child: FileHandle;
        try {
          child = await open(at, DIR_FLAGS);
        } catch (err) {
          if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) continue;
          throw err;
        }
        try {
          await walkDir(child.fd, path);
        } finally {
          await child.close();
        }
      }
    };
    if (splitPath(start).length === 0) {
      await walkDir(this.rootHandle.fd, '');
      return;
    }
    const { stack } = await this.walk(start, { finalIsDir: true });
    try {
      await walkDir(stack[stack.length - 1]!.handle.fd, SafeRoot.logical(stack).replace(/\/$/, ''));
    } finally {
      await this.release(stack);
    }
  }

  /** Sets atime and mtime of every entry (symlinks themselves, not their targets). */
  async setAllTimes(epochSeconds: number): Promise<number> {
    let n = 0;
    const walkDir = async (dirFd: number): Promise<void> => {
      for (const name of await readdir(SafeRoot.at(dirFd))) {
        const at = SafeRoot.at(dirFd, name);
        const st = await lstat(at);
        if (st.isDirectory()) {
          const child = await open(at, DIR_FLAGS);
          try {
            await walkDir(child.fd);
            // Children first: creating nothing, but keep the order obvious.
            await child.utimes(epochSeconds, epochSeconds);
          } finally {
            await child.close();
          }
        } else {
          await lutimes(at, epochSeconds, epochSeconds);
        }
        n++;
      }
    };
    await walkDir(this.rootHandle.fd);
    await this.rootHandle.utimes(epochSeconds, epochSeconds);
    return n + 1;
  }
}

/** Opens a SafeRoot for the duration of `fn`. */
export async function withSafeRoot<T>(root: string, fn: (fs: SafeRoot) => Promise<T>): Promise<T> {
  const fs = await SafeRoot.open(root);
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}

/** Maps errno failures from confined operations to a clear OsbuilderError. */
export function confinedError(err: unknown, root: string): OsbuilderError {
  const e = err as NodeJS.ErrnoException;
  return new OsbuilderError('OUTPUT_INVALID', `cannot update rootfs ${root}: ${e.message}`, 'the rootfs has an unexpected layout; rebuild it from scratch', {
    cause: err,
  });
}
