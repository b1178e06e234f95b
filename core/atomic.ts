import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OsbuilderError } from './errors.js';
import { onInterrupt } from './cleanup.js';
import { ownerAlive, ownerOfName, ownerTag } from './owner.js';

/** Temp name beside the final path, so the rename stays on one filesystem. */
export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.tmp-${ownerTag()}`);
}

/** Removes the temp paths in `dir` named `<prefix>…<owner>` whose owner is dead (a killed run's). */
export async function removeDeadTemps(dir: string, prefix: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const o = name.startsWith(prefix) ? ownerOfName(name) : undefined;
    if (o && !ownerAlive(o)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** How a command names its output in hints: the flag and an example file name (`-o`, `kata-containers-initrd.img`). */
export interface OutputExample {
  flag: string;
  name: string;
}

/**
 * Checks that `path` can become an output: its directory exists and it is not a
 * directory itself. Call it before any expensive work. The hint for a directory
 * suggests `example.name` inside it (unless that is a directory too).
 */
export async function checkOutputPath(path: string, example: OutputExample): Promise<void> {
  const dir = dirname(path);
  const dirStat = await stat(dir).catch(() => undefined);
  if (!dirStat?.isDirectory()) {
    throw new OsbuilderError(
      'OUTPUT_INVALID',
      `output directory ${dir} does not exist`,
      `create it first (mkdir -p ${dir}) or choose another ${example.flag} path`,
    );
  }
  const own = await stat(path).catch(() => undefined);
  if (own?.isDirectory()) {
    const inside = join(path, example.name);
    const taken = (await stat(inside).catch(() => undefined))?.isDirectory();
    throw new OsbuilderError(
      'OUTPUT_INVALID',
      `output path ${path} is a directory`,
      taken ? `give ${example.flag} the path of a file, not a directory` : `give a file name, e.g. ${example.flag} ${inside}`,
    );
  }
}

/**
 * Produces `finalPath` through a temp path: `produce` writes the temp path and
 * may verify it; only if it resolves is the result renamed into place. On any
 * error or interrupt the temp path is removed and `finalPath` is untouched.
 */
export async function atomicOutput<T>(finalPath: string, produce: (tmpPath: string) => Promise<T>): Promise<T> {
  const tmp = tempPathFor(finalPath);
  const remove = () => rm(tmp, { recursive: true, force: true });
  const unregister = onInterrupt(remove);
  try {
    await removeDeadTemps(dirname(finalPath), `.${basename(finalPath)}.tmp-`);
    const result = await produce(tmp);
    await rename(tmp, finalPath);
    return result;
  } catch (err) {
    await remove();
    throw err;
  } finally {
    unregister();
  }
}

/**
 * Same contract for a directory: `produce` fills a fresh temp directory; an
 * existing directory at `finalPath` is replaced only after success.
 */
export async function atomicDirectory<T>(finalPath: string, produce: (tmpDir: string) => Promise<T>): Promise<T> {
  const tmp = tempPathFor(finalPath);
  const old = `${tmp}.old`;
  const remove = () => rm(tmp, { recursive: true, force: true });
  const unregister = onInterrupt(remove);
  try {
    await removeDeadTemps(dirname(finalPath), `.${basename(finalPath)}.tmp-`);
    await mkdir(tmp, { recursive: true });
    const result = await produce(tmp);
    const existing = await stat(finalPath).catch(() => undefined);
    if (existing) await rename(finalPath, old);
    await rename(tmp, finalPath);
    await rm(old, { recursive: true, force: true });
    return result;
  } catch (err) {
    await remove();
    throw err;
  } finally {
    unregister();
  }
}
