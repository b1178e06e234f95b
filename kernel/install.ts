/**
 * Install with Kata's names (build-kernel.sh install_kata) into
 * <prefix>/usr/share/kata-containers/:
 *   vmlinuz-<ver>-<cfgver><suffix>, vmlinux-<ver>-<cfgver><suffix>, config-<ver>-<cfgver><suffix>,
 *   vmlinuz<suffix>.container -> vmlinuz-…, vmlinux<suffix>.container -> vmlinux-…
 * All destinations are checked before anything is written; each file goes to a
 * temp name and is renamed; a different existing file is only replaced with -f.
 */
import { copyFile, chmod, lstat, mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { onInterrupt } from '../core/cleanup.js';
import { variantSuffix } from './state.js';
import { ownerTag } from '../core/owner.js';

export interface InstallNames {
  dir: string;
  vmlinuz: string;
  vmlinux: string;
  config: string;
  vmlinuzLink: string;
  vmlinuxLink: string;
}

/** Kata's file names for a kernel (pure). */
export function installNames(opts: { prefix: string; version: string; configVersion: string; gpu?: string; confidential?: string }): InstallNames {
  const suffix = variantSuffix(opts);
  const base = `${opts.version}-${opts.configVersion}${suffix}`;
  return {
    dir: join(opts.prefix, 'usr/share/kata-containers'),
    vmlinuz: `vmlinuz-${base}`,
    vmlinux: `vmlinux-${base}`,
    config: `config-${base}`,
    vmlinuzLink: `vmlinuz${suffix}.container`,
    vmlinuxLink: `vmlinux${suffix}.container`,
  };
}

export type InstallAction = { kind: 'file'; from: string; to: string; sha256: string } | { kind: 'link'; target: string; to: string };

export interface InstallStep {
  action: InstallAction;
  /** What is there now. */
  state: 'absent' | 'same' | 'different';
}

async function current(a: InstallAction): Promise<InstallStep['state']> {
  const st = await lstat(a.to).catch(() => undefined);
  if (!st) return 'absent';
  if (a.kind === 'link') return st.isSymbolicLink() && (await readlink(a.to)) === a.target ? 'same' : 'different';
  if (!st.isFile()) return 'different';
  return (await sha256File(a.to)) === a.sha256 ? 'same' : 'different';
}

export interface InstallResult {
  dir: string;
  installed: Array<{ path: string; kind: 'file' | 'link'; target?: string; status: 'written' | 'unchanged' | 'replaced' }>;
}

/** Checks every destination, then writes temps and renames them into place. */
export async function installFiles(dir: string, actions: InstallAction[], force: boolean): Promise<InstallResult> {
  const steps: InstallStep[] = [];
  for (const action of actions) steps.push({ action, state: await current(action) });
  const conflicts = steps.filter((s) => s.state === 'different');
  if (conflicts.length && !force) {
    throw new OsbuilderError(
      'OUTPUT_EXISTS',
      `different file(s) already installed:\n${conflicts.map((c) => `  ${c.action.to}`).join('\n')}`,
      'pass -f to replace them, or choose another --prefix',
    );
  }
  await mkdir(dir, { recursive: true });
  const temps: Array<{ tmp: string; to: string }> = [];
  const cleanup = async () => {
    for (const t of temps) await rm(t.tmp, { force: true });
  };
  const unregister = onInterrupt(cleanup);
  try {
    for (const s of steps) {
      if (s.state === 'same') continue;
      const tmp = join(dir, `.${s.action.to.split('/').pop()}.tmp-${ownerTag()}`);
      await rm(tmp, { force: true });
      temps.push({ tmp, to: s.action.to });
      if (s.action.kind === 'file') {
        await copyFile(s.action.from, tmp);
        await chmod(tmp, 0o644);
        if ((await sha256File(tmp)) !== s.action.sha256)
          throw new OsbuilderError('VERIFY_FAILED', `copy of ${s.action.from} does not match its sha256`, 'check the disk and retry');
      } else {
        await symlink(s.action.target, tmp);
      }
    }
    for (const t of temps) await rename(t.tmp, t.to);
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    unregister();
  }
  return {
    dir,
    installed: steps.map((s) => ({
      path: s.action.to,
      kind: s.action.kind,
      target: s.action.kind === 'link' ? s.action.target : undefined,
      status: s.state === 'same' ? 'unchanged' : s.state === 'different' ? 'replaced' : 'written',
    })),
  };
}
