/**
 * Facts a build would otherwise recompute every run, remembered in the cache
 * (<cache>/memo/<kind>-<key hash>.json, so a killed writer's temp file is
 * reaped like any other in the cache): a file's sha256 under its stamp (core/stamp.ts), and
 * values keyed by the stamps of the files they derive from (a compiler's
 * identity from its binary and dpkg's database). A memo is only a shortcut:
 * a missing, unreadable or stale one means computing again.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { atomicOutput } from './atomic.js';
import { cacheRoot } from './cache.js';
import { sha256, sha256File } from './hash.js';
import { stampFile } from './stamp.js';

/** A stamp is trusted once its ctime is this far in the past: a change within the same clock tick would not show. */
const SETTLE_NS = 2_000_000_000n;

async function readMemo<T>(file: string): Promise<T | undefined> {
  return readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as T,
    () => undefined,
  );
}

async function writeMemo(dir: string, file: string, value: unknown): Promise<void> {
  await mkdir(dir, { recursive: true });
  await atomicOutput(file, (tmp) => writeFile(tmp, JSON.stringify(value)));
}

const memoFile = (root: string, kind: string, key: string) => join(root, 'memo', `${kind}-${sha256(key)}.json`);

/** The value remembered under `kind` + `key`, if any: the caller checks that it still holds. */
export async function recall<T>(kind: string, key: string, root: string = cacheRoot()): Promise<T | undefined> {
  return readMemo<T>(memoFile(root, kind, key));
}

/** Remembers `value` under `kind` + `key` for `recall`. */
export async function remember(kind: string, key: string, value: unknown, root: string = cacheRoot()): Promise<void> {
  await writeMemo(join(root, 'memo'), memoFile(root, kind, key), value);
}

const settled = (ctimeNs: bigint) => ctimeNs < BigInt(Date.now()) * 1_000_000n - SETTLE_NS;

/** sha256 of `path`, read again only when its stamp changed since it was last hashed. */
export async function memoSha256(path: string, root: string = cacheRoot()): Promise<string> {
  const dir = join(root, 'memo');
  const file = join(dir, `sha256-${sha256(resolve(path))}.json`);
  const before = await stampFile(path);
  const memo = await readMemo<{ stamp: string; sha256: string }>(file);
  if (memo?.stamp === before.stamp) return memo.sha256;
  const hash = await sha256File(path);
  const after = await stampFile(path);
  if (after.stamp === before.stamp && settled(after.ctimeNs)) await writeMemo(dir, file, { stamp: after.stamp, sha256: hash });
  return hash;
}

/**
 * `compute()` for `key`, remembered while every file in `basis` keeps its
 * stamp (a file that does not exist counts as such).
 */
export async function memoByFiles<T>(kind: string, key: string, basis: string[], compute: () => Promise<T>, root: string = cacheRoot()): Promise<T> {
  const dir = join(root, 'memo');
  const file = memoFile(root, kind, key);
  const stamps = async () => Promise.all(basis.map((p) => stampFile(p).catch(() => undefined)));
  const before = await stamps();
  const seal = before.map((s) => s?.stamp ?? 'missing').join('|');
  const memo = await readMemo<{ seal: string; value: T }>(file);
  if (memo?.seal === seal) return memo.value;
  const value = await compute();
  const after = await stamps();
  if (after.map((s) => s?.stamp ?? 'missing').join('|') === seal && after.every((s) => !s || settled(s.ctimeNs))) await writeMemo(dir, file, { seal, value });
  return value;
}
