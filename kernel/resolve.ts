/** The kernel commands' options, checked and resolved: the variant (arch, GPU, confidential) and the tree directory. */
import { resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { ARCH_FACTS, hostArch, parseArch, type Arch } from '../core/arch.js';
import { readConfigVersion, selectFragments } from './fragments.js';
import { CONFIDENTIAL_GUESTS } from './options.js';
import { parseKernelVersion } from './version.js';
import { normaliseSha256 } from './source.js';
import { variantSuffix } from './state.js';

export interface KernelOptions {
  /** -v: MAJOR.MINOR[.PATCH]. */
  version?: string;
  /** --source: local .tar.xz/.tar.gz or URL (default: kernel.org for -v). */
  source?: string;
  sha256?: string;
  /** -a (default: the host). */
  arch?: string;
  /** -g: only nvidia has fragments. */
  gpu?: string;
  confidential?: string;
  /** -f: replace a tree from another source (setup), replace different installed files (install). */
  force?: boolean;
  /** -k: the source tree directory (default ./kata-linux-<ver>-<cfgver><suffix>). */
  kernelDir?: string;
  /** Extra fragments merged last. */
  fragments?: string[];
}

export interface Resolved {
  arch: Arch;
  version?: string;
  gpu?: 'nvidia';
  confidential?: 'tdx' | 'sev' | 'snp';
  configVersion: string;
  kernelDir: string;
  extra: string[];
}

export type Variant = Pick<Resolved, 'arch' | 'gpu' | 'confidential'>;

export function resolveVariant(opts: Pick<KernelOptions, 'arch' | 'gpu' | 'confidential'>): Variant {
  const arch = opts.arch ? parseArch(opts.arch) : hostArch();
  let gpu: Resolved['gpu'];
  if (opts.gpu) {
    if (opts.gpu !== 'nvidia') throw new OsbuilderError('UNSUPPORTED', `GPU vendor ${JSON.stringify(opts.gpu)} has no fragments`, 'use -g nvidia');
    gpu = 'nvidia';
  }
  let confidential: Resolved['confidential'];
  if (opts.confidential) {
    if (!(CONFIDENTIAL_GUESTS as readonly string[]).includes(opts.confidential))
      throw new OsbuilderError(
        'USAGE',
        `unknown confidential guest type ${JSON.stringify(opts.confidential)}`,
        `use --confidential ${CONFIDENTIAL_GUESTS.join(', ')}`,
      );
    confidential = opts.confidential as Resolved['confidential'];
  }
  return { arch, gpu, confidential };
}

export function resolveOptions(opts: KernelOptions): Resolved {
  const { arch, gpu, confidential } = resolveVariant(opts);
  const version = opts.version !== undefined ? parseKernelVersion(opts.version) : undefined;
  normaliseSha256(opts.sha256);
  const configVersion = readConfigVersion();
  let kernelDir: string;
  if (opts.kernelDir) kernelDir = resolve(opts.kernelDir);
  else if (version) kernelDir = resolve(`kata-linux-${version}-${configVersion}${variantSuffix({ gpu, confidential })}`);
  else throw new OsbuilderError('USAGE', 'give the kernel version (-v) or the source tree (--kernel-dir)', 'e.g. osbuilder kernel setup -v 6.1.62');
  return { arch, version, gpu, confidential, configVersion, kernelDir, extra: (opts.fragments ?? []).map((f) => resolve(f)) };
}

/** "Linux 6.1.62 (ARCH=x86_64, -g nvidia)", for step titles and errors. */
export function describeKernel(r: Resolved, version: string): string {
  return `Linux ${version} (ARCH=${ARCH_FACTS[r.arch].kernelArch}${r.gpu ? `, -g ${r.gpu}` : ''}${r.confidential ? `, ${r.confidential}` : ''})`;
}

/** Fails early (before any download) on bad fragments or options. */
export function preflight(r: Resolved): void {
  selectFragments({ arch: r.arch, gpu: r.gpu, confidential: r.confidential, extra: r.extra });
}
