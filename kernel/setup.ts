/**
 * `kernel setup` (obtain + verify + extract the source, assemble and verify
 * .config) and `kernel config` (the same inputs; report only, and optionally
 * write the config elsewhere).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { atomicOutput, checkOutputPath } from '../core/atomic.js';
import { step } from '../core/log.js';
import type { Arch } from '../core/arch.js';
import { assembleConfig, type AssembleResult } from './assemble.js';
import { fragmentsHash } from './fragments.js';
import { assertVerified, type OptionResult, type VerifyReport } from './verify.js';
import { readState, writeState, variantSuffix, type KernelState } from './state.js';
import { describeKernel, preflight, resolveOptions, type KernelOptions, type Resolved } from './resolve.js';
import { prepareTree, type TreeSource } from './prepare-tree.js';

export interface ConfigSummary {
  ok: boolean;
  requested: number;
  present: number;
  dropped: OptionResult[];
  unknown: OptionResult[];
  ignored: OptionResult[];
  overrides: VerifyReport['overrides'];
  /** The tree's proven config was reused (same recipe, tree files unchanged): no make ran. */
  reused: boolean;
}

function summary(rep: VerifyReport, reused: boolean): ConfigSummary {
  return {
    reused,
    ok: rep.ok,
    requested: rep.requested,
    present: rep.present.length,
    dropped: rep.dropped,
    unknown: rep.unknown,
    ignored: rep.ignored,
    overrides: rep.overrides,
  };
}

export interface SetupResult {
  kernelDir: string;
  version: string;
  arch: Arch;
  variant: string;
  configVersion: string;
  config: string;
  source: { origin: string; sha256: string; reused: boolean };
  fragments: string[];
  fragmentsHash: string;
  verify: ConfigSummary;
}

/** Prepares the tree, then assembles and verifies its config (throwing when an option did not survive). */
async function assembleVerified(r: Resolved, opts: KernelOptions): Promise<{ src: TreeSource; asm: AssembleResult }> {
  const src = await prepareTree(r, opts);
  const asm = await step(`assemble + verify .config for ${describeKernel(r, src.version)}`, () =>
    assembleConfig({ tree: r.kernelDir, arch: r.arch, gpu: r.gpu, confidential: r.confidential, extra: r.extra }),
  );
  assertVerified(asm.report, describeKernel(r, src.version));
  return { src, asm };
}

function setupResult(r: Resolved, src: TreeSource, asm: AssembleResult, config: string, hash: string): SetupResult {
  return {
    kernelDir: r.kernelDir,
    version: src.version,
    arch: r.arch,
    variant: variantSuffix(r).replace(/^-/, '') || 'default',
    configVersion: r.configVersion,
    config,
    source: { origin: src.origin, sha256: src.sha256, reused: src.reused },
    fragments: asm.fragments,
    fragmentsHash: hash,
    verify: summary(asm.report, asm.reused),
  };
}

export async function setupKernel(opts: KernelOptions): Promise<SetupResult> {
  const r = resolveOptions(opts);
  preflight(r);
  const { src, asm } = await assembleVerified(r, opts);
  const dotConfig = join(r.kernelDir, '.config');
  const old = await readFile(dotConfig, 'utf8').catch(() => undefined);
  if (old !== asm.config) {
    await atomicOutput(dotConfig, (tmp) => writeFile(tmp, asm.config));
  }
  const prev = await readState(r.kernelDir);
  const state: KernelState = {
    version: src.version,
    arch: r.arch,
    gpu: r.gpu,
    confidential: r.confidential,
    configVersion: r.configVersion,
    source: { origin: src.origin, sha256: src.sha256, topDir: src.topDir },
    fragmentsHash: fragmentsHash(),
    fragments: asm.fragments,
    configSha256: asm.configSha256,
    build: prev?.configSha256 === asm.configSha256 && prev.arch === r.arch ? prev.build : undefined,
  };
  await writeState(r.kernelDir, state);
  return setupResult(r, src, asm, dotConfig, state.fragmentsHash);
}

export interface ConfigResult extends SetupResult {
  /** Where the assembled config was written (--output), if asked. */
  output?: string;
  /** The assembled config itself, with --output - (print instead of writing a file). */
  text?: string;
  /** Every option the fragments ask for, after merging (last fragment wins). */
  requested: Array<{ symbol: string; value: string; from: string }>;
  report: VerifyReport;
}

/**
 * Assembles and verifies without touching the tree's .config. A failed
 * verification throws (KERNEL_SYMBOL_UNKNOWN / KERNEL_OPTION_DROPPED), its
 * details listing every failed option.
 */
export async function configKernel(opts: KernelOptions & { output?: string }): Promise<ConfigResult> {
  const r = resolveOptions(opts);
  preflight(r);
  const toStdout = opts.output === '-';
  if (opts.output && !toStdout) await checkOutputPath(resolve(opts.output), { flag: '-o', name: 'kata-kernel.config' });
  const { src, asm } = await assembleVerified(r, opts);
  let output: string | undefined;
  if (opts.output && !toStdout) {
    output = resolve(opts.output);
    await atomicOutput(output, (tmp) => writeFile(tmp, asm.config));
  }
  return {
    ...setupResult(r, src, asm, output ?? '', fragmentsHash()),
    output,
    ...(toStdout ? { text: asm.config } : {}),
    requested: asm.merged.requested.map((q) => ({ symbol: q.symbol, value: q.value, from: `${q.file}:${q.line}` })),
    report: asm.report,
  };
}
