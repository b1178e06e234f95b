/** Applies plan FileOps to a rootfs through core/fs-safe (never outside the root). */
import type { SafeRoot } from '../core/fs-safe.js';
import type { FileOp } from '../distros/index.js';
import { TRANSFORMS } from './transforms.js';

export interface ApplyStats {
  applied: number;
  skipped: number;
  removed: string[];
}

/** Names of files and links Kata's trim deletes (<unit>.service, <unit>.socket, exact names). */
export function trimmedNames(units: string[], files: string[]): Set<string> {
  const names = new Set<string>(files);
  for (const u of units) {
    names.add(`${u}.service`);
    names.add(`${u}.socket`);
  }
  return names;
}

async function removeFilesUnder(fs: SafeRoot, path: string): Promise<string[]> {
  const st = await fs.stat(path);
  if (!st?.isDirectory()) return [];
  const real = await fs.realpath(path);
  const doomed: string[] = [];
  await fs.walkTree(({ path: p, stats }) => {
    if (!stats.isDirectory()) doomed.push(p);
  }, real);
  for (const p of doomed) await fs.remove(p);
  return doomed;
}

export async function applyFileOps(fs: SafeRoot, ops: FileOp[]): Promise<ApplyStats> {
  const stats: ApplyStats = { applied: 0, skipped: 0, removed: [] };
  for (const op of ops) {
    if ((await conditionFails(fs, op)) || !(await applyOp(fs, op, stats.removed))) stats.skipped++;
    else stats.applied++;
  }
  return stats;
}

/** `when` names a path that is missing, or `unless` one that exists (even as a dangling link). */
async function conditionFails(fs: SafeRoot, op: FileOp): Promise<boolean> {
  if (op.when !== undefined && !(await fs.exists(op.when))) return true;
  return op.unless !== undefined && ((await fs.exists(op.unless)) || (await fs.lstat(op.unless)) !== undefined);
}

/** Applies one operation, adding what it deleted to `removed`; false when it had nothing to apply. */
async function applyOp(fs: SafeRoot, op: FileOp, removed: string[]): Promise<boolean> {
  switch (op.op) {
    case 'mkdir':
      await fs.mkdirp(op.path, op.mode ?? 0o755);
      if (op.mode !== undefined) await fs.chmod(op.path, op.mode);
      return true;
    case 'write':
      await fs.writeFile(op.path, op.content, { mode: op.mode ?? 0o644 });
      return true;
    case 'symlink':
      await fs.symlink(op.target, op.path);
      return true;
    case 'remove':
      if (await fs.remove(op.path, { recursive: op.recursive ?? false })) removed.push(op.path);
      return true;
    case 'remove-files-under':
      removed.push(...(await removeFilesUnder(fs, op.path)));
      return true;
    case 'copy-within':
      return copyWithin(fs, op);
    case 'trim-units':
      removed.push(...(await trimUnits(fs, op)));
      return true;
    case 'transform':
      await transformFiles(fs, op);
      return true;
  }
}

/** The first of `from` that is a file (else the fallback) written to `path`; false when there is neither. */
async function copyWithin(fs: SafeRoot, op: Extract<FileOp, { op: 'copy-within' }>): Promise<boolean> {
  let content: string | Buffer | undefined;
  for (const src of op.from) {
    const st = await fs.stat(src);
    if (st?.isFile()) {
      content = await fs.readFile(src);
      break;
    }
  }
  content ??= op.fallback;
  if (content === undefined) return false;
  await fs.writeFile(op.path, content, { mode: op.mode ?? 0o644 });
  return true;
}

/** Deletes the trimmed units' files and links anywhere but /proc, /sys and /dev; returns their paths. */
async function trimUnits(fs: SafeRoot, op: Extract<FileOp, { op: 'trim-units' }>): Promise<string[]> {
  const names = trimmedNames(op.units, op.files);
  const doomed: string[] = [];
  await fs.walkTree(({ path, name, stats: st }) => {
    if (/^\/(proc|sys|dev)$/.test(path)) return 'skip';
    if (names.has(name) && (st.isFile() || st.isSymbolicLink())) doomed.push(path);
  });
  for (const p of doomed) await fs.remove(p);
  return doomed;
}

/** Rewrites each file of `paths` that exists, keeping its mode; unchanged files are not written. */
async function transformFiles(fs: SafeRoot, op: Extract<FileOp, { op: 'transform' }>): Promise<void> {
  const fn = TRANSFORMS[op.transform];
  for (const p of op.paths) {
    const st = await fs.stat(p);
    if (!st?.isFile()) continue;
    const before = (await fs.readFile(p)).toString('utf8');
    const after = fn(before);
    if (after !== before) await fs.writeFile(await fs.realpath(p), after, { mode: st.mode & 0o7777 });
  }
}
