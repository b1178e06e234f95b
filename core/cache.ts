/**
 * Content-addressed build cache. An entry is a directory
 *   <root>/<stage>/<key>/{entry.json, <artifact files>}
 * where key = sha256 of the stage's canonicalised inputs. entry.json stores the
 * sha256 and size of every file; an entry whose files do not match is corrupt,
 * is removed, and is rebuilt — never used.
 */
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { sha256, sha256File } from './hash.js';
import { onInterrupt } from './cleanup.js';
import { warn } from './log.js';

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

export class BuildCache {
  constructor(readonly root: string = cacheRoot()) {}

  private entryDir(stage: string, key: string): string {
    return join(this.root, stage, key);
  }

  /** A verified entry, or undefined (a corrupt entry is removed). */
  async lookup<M>(stage: string, key: string): Promise<CacheEntry<M> | undefined> {
    const dir = this.entryDir(stage, key);
    let entry: CacheEntry<M>;
    try {
      entry = JSON.parse(await readFile(join(dir, 'entry.json'), 'utf8')) as CacheEntry<M>;
    } catch {
      if ((await stat(dir).catch(() => undefined)) !== undefined) await this.discard(dir, 'unreadable entry.json');
      return undefined;
    }
    for (const [name, want] of Object.entries(entry.files)) {
      const path = join(dir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st || st.size !== want.size || (await sha256File(path)) !== want.sha256) {
        await this.discard(dir, `${name} does not match its stored sha256`);
        return undefined;
      }
    }
    const now = new Date();
    await utimes(join(dir, 'entry.json'), now, now).catch(() => undefined);
    return { ...entry, dir };
  }

  /**
   * Builds an entry: `produce` writes artifact files into a fresh directory and
   * returns metadata; files are hashed and the entry is renamed into place.
   */
  async store<M>(stage: string, key: string, inputs: CacheInputs, produce: (dir: string) => Promise<M>): Promise<CacheEntry<M>> {
    const dir = this.entryDir(stage, key);
    const tmp = `${dir}.tmp-${process.pid}`;
    const unregister = onInterrupt(() => rm(tmp, { recursive: true, force: true }));
    try {
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      const meta = await produce(tmp);
      const files: CacheEntry['files'] = {};
      for (const name of (await readdir(tmp)).sort()) {
        const st = await stat(join(tmp, name));
        if (st.isFile()) files[name] = { sha256: await sha256File(join(tmp, name)), size: st.size };
      }
      const entry = { stage, key, inputs, files, createdAt: new Date().toISOString(), meta };
      await writeFile(join(tmp, 'entry.json'), JSON.stringify(entry, null, 2) + '\n');
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      return { ...entry, dir };
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    } finally {
      unregister();
    }
  }

  /** Every readable entry, newest use first (not verified: ls must stay cheap). */
  async list(): Promise<Array<CacheEntry & { bytes: number; usedAt: Date }>> {
    const out: Array<CacheEntry & { bytes: number; usedAt: Date }> = [];
    for (const stage of await readdir(this.root).catch(() => [] as string[])) {
      for (const key of await readdir(join(this.root, stage)).catch(() => [] as string[])) {
        if (key.includes('.tmp-')) continue;
        const dir = this.entryDir(stage, key);
        try {
          const file = join(dir, 'entry.json');
          const entry = JSON.parse(await readFile(file, 'utf8')) as CacheEntry;
          const bytes = Object.values(entry.files).reduce((n, f) => n + f.size, 0);
          out.push({ ...entry, dir, bytes, usedAt: (await stat(file)).mtime });
        } catch {
          // half-written or foreign directory: prune removes it
        }
      }
    }
    return out.sort((a, b) => b.usedAt.getTime() - a.usedAt.getTime());
  }

  /** Keeps the `keep` most recently used entries per stage; removes the rest and leftovers. */
  async prune(keep: number): Promise<{ removed: string[]; kept: number }> {
    const entries = await this.list();
    const valid = new Set(entries.map((e) => e.dir));
    const seen = new Map<string, number>();
    const removed: string[] = [];
    for (const e of entries) {
      const n = (seen.get(e.stage) ?? 0) + 1;
      seen.set(e.stage, n);
      if (n > keep) {
        await rm(e.dir, { recursive: true, force: true });
        removed.push(e.dir);
      }
    }
    for (const stage of await readdir(this.root).catch(() => [] as string[])) {
      for (const key of await readdir(join(this.root, stage)).catch(() => [] as string[])) {
        const dir = this.entryDir(stage, key);
        if (!valid.has(dir) && !removed.includes(dir) && !key.includes(`.tmp-${process.pid}`)) {
          await rm(dir, { recursive: true, force: true });
          removed.push(dir);
        }
      }
    }
    return { removed, kept: entries.length - removed.filter((d) => valid.has(d)).length };
  }

  private async discard(dir: string, why: string): Promise<void> {
    warn(`cache entry ${dir} is corrupt (${why}): rebuilding`);
    await rm(dir, { recursive: true, force: true });
  }
}
