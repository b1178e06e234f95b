/**
 * Exclusive locks between osbuilder processes sharing one cache. A lock is a
 * file holding its owner's tag (core/owner.ts), created whole by link(2) so it
 * is never seen empty. A lock whose owner is dead (killed, OOM) is taken over:
 * renamed aside, checked to still be the dead one, removed.
 */
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ownerAlive, ownerTag, parseOwnerTag } from './owner.js';
import { onInterrupt } from './cleanup.js';

const POLL_MS = 200;

/** The tag in a lock file, or undefined when it is gone. */
export async function lockOwner(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').then(
    (t) => t.trim(),
    () => undefined,
  );
}

/** True when `path` is held by a live process. */
export async function lockHeld(path: string): Promise<boolean> {
  const tag = await lockOwner(path);
  const o = tag === undefined ? undefined : parseOwnerTag(tag);
  return o !== undefined && ownerAlive(o);
}

/** One attempt: true when the lock is now ours. */
let seq = 0;

async function tryLock(path: string): Promise<boolean> {
  const mine = `${path}.${ownerTag()}-${++seq}`;
  await writeFile(mine, `${ownerTag()}\n`);
  try {
    await link(mine, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(mine, { force: true });
  }
}

/** Removes `path` if its owner is dead (or it names none); true when it is gone or was just taken. */
export async function removeIfDead(path: string): Promise<boolean> {
  const tag = await lockOwner(path);
  if (tag === undefined) return true;
  const o = parseOwnerTag(tag);
  if (o && ownerAlive(o)) return false;
  const aside = `${path}.dead-${ownerTag()}`;
  try {
    await rename(path, aside);
  } catch {
    return true; // someone else took it first: try again
  }
  // Between our read and rename another process may have taken over and locked: give its lock back.
  if ((await lockOwner(aside)) !== tag) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
  return true;
}

/**
 * Runs `fn` holding the lock at `path`; waits while a live process holds it
 * (`onWait` is told once, with the holder's tag).
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, onWait?: (holder: string) => void): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  let told = false;
  while (!(await tryLock(path))) {
    if (await removeIfDead(path)) continue;
    if (!told && onWait) onWait((await lockOwner(path)) ?? 'unknown');
    told = true;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const release = async () => {
    if ((await lockOwner(path)) === ownerTag()) await rm(path, { force: true });
  };
  const unregister = onInterrupt(release);
  try {
    return await fn();
  } finally {
    unregister();
    await release();
  }
}
