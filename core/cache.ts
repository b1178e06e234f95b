/**
 * Content-addressed build cache. An entry is a directory
 *   <root>/<stage>/<key>/{entry.json, <artifact files>}
 * where key = sha256 of the stage's canonicalised inputs. entry.json stores the
 * sha256 and size of every file; an entry whose files do not match is corrupt,
 * is removed, and is rebuilt — never used.
 *
 * Several osbuilder processes may share one cache: an entry is looked up and
 * built under its lock (locks/<stage>.<key>), so it is built once; it is
 * published by rename and never changed in place; a process holds (holds/<tag>)
 * the entries it uses until it exits, and nothing held is replaced or pruned.
 * Temp paths carry their owner's tag (core/owner.ts): those of dead owners are
 * leftovers, listed by `cache ls` and removed by every build and by `prune`.
 */
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { sha256, sha256File } from './hash.js';
import { atomicOutput } from './atomic.js';
import { fsClock, stampFile } from './stamp.js';
import { onInterrupt } from './cleanup.js';
import { info, warn } from './log.js';
import { lockHeld, lockOwner, removeIfDead, withLock } from './lock.js';
import { ownerAlive, ownerOfName, ownerTag, parseOwnerTag } from './owner.js';

export type CacheInputs = { [name: string]: string | number | boolean | null | undefined | string[] | CacheInputs };

export interface CacheEntry<M = unknown> {
  stage: string;
  key: string;
  dir: string;
  inputs: CacheInputs;
  files: Record<string, { sha256: string; size: number }>;
  createdAt: string;
  meta: M;
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.OSBUILDER_CACHE_DIR) return env.OSBUILDER_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'osbuilder');
}

/** Canonical JSON: object keys sorted, undefined dropped, so equal inputs give equal keys. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function cacheKey(inputs: CacheInputs): string {
  return sha256(canonicalJson(inputs));
}

export interface Leftover {
  path: string;
  /** `<pid>-<start>` of the process that made it. */
  owner: string;
  alive: boolean;
  bytes: number;
}

/** Top-level directories of the cache that are not stages. */
const LOCKS = 'locks';
const HOLDS = 'holds';
/** Marks a store: a directory that is not an entry (e.g. the apt package cache), kept by last use as entries are. */
const STORE_FILE = 'store.json';

export interface Store {
  top: string;
  name: string;
  dir: string;
  /** What store.json says about it (e.g. mirror, suite, arch). */
  info: Record<string, string>;
  files: number;
  bytes: number;
  usedAt: Date;
}

export class BuildCache {
  private holding = false;

  constructor(readonly root: string = cacheRoot()) {}

  private entryDir(stage: string, key: string): string {
    return join(this.root, stage, key);
  }

  /** The lock guarding `<root>/<top>/<name>` (an entry, a kernel tree). */
  lockPath(top: string, name: string): string {
    return join(this.root, LOCKS, `${top}.${name}`);
  }

  /** Runs `fn` holding the lock of `<root>/<top>/<name>`. */
  withLock<T>(top: string, name: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.lockPath(top, name), fn, (holder) => info(`waiting for ${top}/${name.slice(0, 16)}: process ${holder} is building it`));
  }

  /** A verified entry, or undefined (a corrupt entry is removed). Call it holding the entry's lock. */
  async lookup<M>(stage: string, key: string): Promise<CacheEntry<M> | undefined> {
    const dir = this.entryDir(stage, key);
    let entry: CacheEntry<M>;
    try {
      entry = JSON.parse(await readFile(join(dir, 'entry.json'), 'utf8')) as CacheEntry<M>;
    } catch {
      if ((await stat(dir).catch(() => undefined)) !== undefined) await this.discard(dir, 'unreadable entry.json');
      return undefined;
    }
    const mismatch = await verifyFiles(dir, entry.files);
    if (mismatch) {
      await this.discard(dir, `${mismatch} does not match its stored sha256`);
      return undefined;
    }
    const now = new Date();
    await utimes(join(dir, 'entry.json'), now, now).catch(() => undefined);
    return { ...entry, dir };
  }

  /**
   * The entry for `key`, built at most once however many processes ask: under
   * the entry's lock, a verified hit (unless `reuse` is false), else `produce`
   * builds it. The entry is held by this process until it exits.
   */
  async obtain<M>(
    stage: string,
    key: string,
    inputs: CacheInputs,
    produce: (dir: string) => Promise<M>,
    reuse = true,
  ): Promise<{ entry: CacheEntry<M>; cached: boolean }> {
    return this.withLock(stage, key, async () => {
      const hit = reuse ? await this.lookup<M>(stage, key) : undefined;
      const entry = hit ?? (await this.store(stage, key, inputs, produce));
      this.hold(entry.dir);
      return { entry, cached: hit !== undefined };
    });
  }

  /**
   * Builds an entry: `produce` writes artifact files into a fresh directory and
   * returns metadata; files are hashed and the entry is renamed into place. An
   * entry already there (--no-cache) is replaced once no other process holds it.
   */
  private async store<M>(stage: string, key: string, inputs: CacheInputs, produce: (dir: string) => Promise<M>): Promise<CacheEntry<M>> {
    const dir = this.entryDir(stage, key);
    const tmp = `${dir}.tmp-${ownerTag()}`;
    const unregister = onInterrupt(() => rm(tmp, { recursive: true, force: true }));
    try {
      await mkdir(tmp, { recursive: true });
      const meta = await produce(tmp);
      const files: CacheEntry['files'] = {};
      for (const name of (await readdir(tmp)).sort()) {
        const st = await stat(join(tmp, name));
        if (st.isFile()) files[name] = { sha256: await sha256File(join(tmp, name)), size: st.size };
      }
      const entry = { stage, key, inputs, files, createdAt: new Date().toISOString(), meta };
      await writeFile(join(tmp, 'entry.json'), `${JSON.stringify(entry, null, 2)}\n`);
      if (await stat(dir).catch(() => undefined)) {
        await this.waitUntilUnheld(dir);
        await rename(dir, `${tmp}-old`);
      }
      await rename(tmp, dir);
      await rm(`${tmp}-old`, { recursive: true, force: true });
      return { ...entry, dir };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    } finally {
      unregister();
    }
  }

  /**
   * A store `<root>/<top>/<name>/`, made when absent, marked used now and held
   * by this process until it exits (prune leaves it alone meanwhile). Temp
   * files that dead processes left in it are removed.
   */
  async openStore(top: string, name: string, info: Record<string, string>): Promise<string> {
    const dir = join(this.root, top, name);
    await mkdir(dir, { recursive: true });
    this.hold(dir);
    const file = join(dir, STORE_FILE);
    if (!(await stat(file).catch(() => undefined))) await atomicOutput(file, (tmp) => writeFile(tmp, `${JSON.stringify(info, null, 2)}\n`));
    const now = new Date();
    await utimes(file, now, now);
    await reapStoreTemps(dir);
    return dir;
  }

  /** Every store, newest use first. */
  async stores(): Promise<Store[]> {
    const out: Store[] = [];
    for (const [top, name, dir] of await this.children()) {
      const file = join(dir, STORE_FILE);
      const info = await readFile(file, 'utf8').then(
        (t) => JSON.parse(t) as Record<string, string>,
        () => undefined,
      );
      if (!info) continue;
      const names = (await readdir(dir)).filter((n) => n !== STORE_FILE && !n.startsWith('.'));
      out.push({ top, name, dir, info, files: names.length, bytes: await treeBytes(dir), usedAt: (await stat(file)).mtime });
    }
    return out.sort((a, b) => b.usedAt.getTime() - a.usedAt.getTime());
  }

  /** Records that this process uses `dir` (until it exits). */
  private hold(dir: string): void {
    const file = join(this.root, HOLDS, ownerTag());
    mkdirSync(join(this.root, HOLDS), { recursive: true });
    appendFileSync(file, `${dir}\n`);
    if (!this.holding) process.once('exit', () => rmSync(file, { force: true }));
    this.holding = true;
  }

  /** Every path held by another live process. */
  async heldByOthers(): Promise<Set<string>> {
    const held = new Set<string>();
    for (const tag of await readdir(join(this.root, HOLDS)).catch(() => [] as string[])) {
      const o = parseOwnerTag(tag);
      if (!o || tag === ownerTag() || !ownerAlive(o)) continue;
      const text = await readFile(join(this.root, HOLDS, tag), 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line) held.add(line);
    }
    return held;
  }

  private async waitUntilUnheld(dir: string): Promise<void> {
    for (let told = false; (await this.heldByOthers()).has(dir); told = true) {
      if (!told) info(`waiting to replace ${dir}: another osbuilder process is using it`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Names under the cache's top-level directories, as [top, name, path]. */
  private async children(): Promise<Array<[string, string, string]>> {
    const out: Array<[string, string, string]> = [];
    for (const top of await readdir(this.root).catch(() => [] as string[])) {
      for (const name of await readdir(join(this.root, top)).catch(() => [] as string[])) out.push([top, name, join(this.root, top, name)]);
    }
    return out;
  }

  /** Every readable entry, newest use first (not verified: ls must stay cheap). */
  async list(): Promise<Array<CacheEntry & { bytes: number; usedAt: Date }>> {
    const out: Array<CacheEntry & { bytes: number; usedAt: Date }> = [];
    for (const [top, name, dir] of await this.children()) {
      if (top === LOCKS || top === HOLDS || ownerOfName(name)) continue;
      try {
        const file = join(dir, 'entry.json');
        const entry = JSON.parse(await readFile(file, 'utf8')) as CacheEntry;
        const bytes = Object.values(entry.files).reduce((n, f) => n + f.size, 0);
        out.push({ ...entry, dir, bytes, usedAt: (await stat(file)).mtime });
      } catch {
        // a kernel tree, a source tarball, a foreign directory: not an entry
      }
    }
    return out.sort((a, b) => b.usedAt.getTime() - a.usedAt.getTime());
  }

  /** Temp paths, locks and holds left by processes (dead or still running). */
  async leftovers(): Promise<Leftover[]> {
    const out: Leftover[] = [];
    for (const [top, name, path] of await this.children()) {
      const tag = top === LOCKS ? await lockOwner(path) : top === HOLDS ? name : ownerOfName(name) && name;
      if (!tag) continue;
      const o = top === LOCKS || top === HOLDS ? parseOwnerTag(tag) : ownerOfName(name);
      out.push({ path, owner: o ? `${o.pid}-${o.start}` : tag, alive: o !== undefined && ownerAlive(o), bytes: await treeBytes(path) });
    }
    return out;
  }

  /** Removes what dead processes left behind; returns the removed paths. */
  async reapDead(): Promise<string[]> {
    const removed: string[] = [];
    for (const l of await this.leftovers()) {
      if (l.alive) continue;
      try {
        if (l.path.startsWith(`${join(this.root, LOCKS)}/`)) await removeIfDead(l.path);
        else await rm(l.path, { recursive: true, force: true, maxRetries: 5 });
        removed.push(l.path);
      } catch (err) {
        warn(`could not remove ${l.path} (${(err as Error).message}): the next run tries again`);
      }
    }
    return removed;
  }

  /**
   * Keeps the `keep` most recently used entries per stage (and stores per top
   * directory) and removes the rest (kernel trees and sources too), except
   * what a live process holds, locks or is writing; what dead processes left
   * is removed.
   */
  async prune(keep: number): Promise<{ removed: string[]; kept: number; inUse: string[] }> {
    const removed = await this.reapDead();
    const held = await this.heldByOthers();
    const entries = await this.list();
    const keepDirs = new Set<string>();
    const seen = new Map<string, number>();
    for (const e of entries) {
      const n = (seen.get(e.stage) ?? 0) + 1;
      seen.set(e.stage, n);
      if (n <= keep) keepDirs.add(e.dir);
    }
    for (const st of await this.stores()) {
      const n = (seen.get(`store:${st.top}`) ?? 0) + 1;
      seen.set(`store:${st.top}`, n);
      if (n <= keep) keepDirs.add(st.dir);
      removed.push(...(await reapStoreTemps(st.dir)));
    }
    const inUse: string[] = [];
    for (const [top, name, path] of await this.children()) {
      if (top === LOCKS || top === HOLDS || ownerOfName(name) || keepDirs.has(path) || removed.includes(path)) continue;
      if (held.has(path) || (await lockHeld(this.lockPath(top, name)))) {
        inUse.push(path);
        continue;
      }
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
    return { removed, kept: keepDirs.size + entries.filter((e) => inUse.includes(e.dir)).length, inUse };
  }

  private async discard(dir: string, why: string): Promise<void> {
    warn(`cache entry ${dir} is corrupt (${why}): rebuilding`);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Stamps of an entry's files whose content was last hashed and matched (core/stamp.ts). */
const VERIFIED = '.verified.json';

/**
 * The first file of an entry without its stored size and sha256, or undefined
 * when all have them. A file is hashed unless its stamp is the one recorded
 * when it last matched; what matched is recorded for the next lookup.
 */
async function verifyFiles(dir: string, files: CacheEntry['files']): Promise<string | undefined> {
  const known = await readFile(join(dir, VERIFIED), 'utf8').then(
    (t) => JSON.parse(t) as Record<string, string>,
    () => ({}) as Record<string, string>,
  );
  const clock = await fsClock(join(dir, VERIFIED));
  const verified: Record<string, string> = {};
  for (const [name, want] of Object.entries(files)) {
    const path = join(dir, name);
    const st = await stampFile(path).catch(() => undefined);
    if (!st) return name;
    if (known[name] !== st.stamp && ((await stat(path)).size !== want.size || (await sha256File(path)) !== want.sha256)) return name;
    if (st.ctimeNs < clock) verified[name] = st.stamp;
  }
  if (canonicalJson(verified) !== canonicalJson(known)) await atomicOutput(join(dir, VERIFIED), (tmp) => writeFile(tmp, `${JSON.stringify(verified)}\n`));
  return undefined;
}

/** Removes the temp files dead processes left in a store; returns their paths. */
async function reapStoreTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const o = ownerOfName(name);
    if (!o || ownerAlive(o)) continue;
    await rm(join(dir, name), { force: true, recursive: true });
    removed.push(join(dir, name));
  }
  return removed;
}

/** Bytes under `path` (not following links). */
async function treeBytes(path: string): Promise<number> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isDirectory()) return st?.size ?? 0;
  let n = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) n += await treeBytes(join(path, name));
  return n;
}
