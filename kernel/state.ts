/** The stamp a source tree carries between setup, build and install (<tree>/.osbuilder/state.json). */
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import type { Arch } from '../core/arch.js';
import { SCRATCH } from './assemble.js';
import { ownerTag } from '../core/owner.js';
import { sha256 } from '../core/hash.js';

export interface Artifact {
  /** Relative to the tree. */
  path: string;
  sha256: string;
  size: number;
}

export interface KernelState {
  /** Version from the tree's Makefile (6.1.192). */
  version: string;
  arch: Arch;
  gpu?: 'nvidia';
  confidential?: 'tdx' | 'sev' | 'snp';
  configVersion: string;
  source: { origin: string; sha256: string; topDir: string };
  fragmentsHash: string;
  fragments: string[];
  /** sha256 of the .config that verified. */
  configSha256: string;
  build?: {
    kernelRelease: string;
    engine: 'native' | 'docker';
    vmlinuz: Artifact;
    vmlinux: Artifact;
    headersTarball?: Artifact;
    debs?: Artifact[];
    /** Built with the full image (false: --headers-only). */
    images: boolean;
  };
}

export function statePath(tree: string): string {
  return join(tree, SCRATCH, 'state.json');
}

export async function readState(tree: string): Promise<KernelState | undefined> {
  const text = await readFile(statePath(tree), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as KernelState;
  } catch {
    throw new OsbuilderError('KERNEL_CONFIG', `${statePath(tree)} is not valid JSON`, 'rerun osbuilder kernel setup -f');
  }
}

export async function writeState(tree: string, state: KernelState): Promise<void> {
  const p = statePath(tree);
  await mkdir(dirname(p), { recursive: true });
  const tmp = `${p}.tmp-${ownerTag()}`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, p);
}

/** Kata's name suffix: -<tee> and/or -nvidia-gpu (build-kernel.sh install_kata). */
export function variantSuffix(s: { gpu?: string; confidential?: string }): string {
  return `${s.confidential ? `-${s.confidential}` : ''}${s.gpu ? `-${s.gpu}-gpu` : ''}`;
}

/** The state of a tree set up for this variant with its verified .config unchanged; `what` is the command that needs it. */
export async function loadState(r: Pick<KernelState, 'arch' | 'gpu' | 'confidential'> & { kernelDir: string }, what: string): Promise<KernelState> {
  const state = await readState(r.kernelDir);
  if (!state) {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `${r.kernelDir} has not been set up`,
      `run osbuilder kernel setup first (with the same -v/-g/--kernel-dir), then ${what}`,
    );
  }
  if ((r.gpu ?? null) !== (state.gpu ?? null) || (r.confidential ?? null) !== (state.confidential ?? null) || r.arch !== state.arch) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${r.kernelDir} was set up for ${state.arch}${variantSuffix(state)}, not ${r.arch}${variantSuffix(r)}`,
      'pass the same -a/-g/--confidential as to setup, or set up another --kernel-dir',
    );
  }
  if (!state.configSha256) {
    throw new OsbuilderError('KERNEL_CONFIG', `${r.kernelDir} has no verified .config yet`, 'run osbuilder kernel setup until it verifies');
  }
  const cfg = await readFile(join(r.kernelDir, '.config'), 'utf8').catch(() => '');
  if (sha256(cfg) !== state.configSha256) {
    throw new OsbuilderError(
      'KERNEL_CONFIG',
      `${r.kernelDir}/.config changed since it was verified`,
      'rerun osbuilder kernel setup to assemble and verify it again',
    );
  }
  return state;
}
