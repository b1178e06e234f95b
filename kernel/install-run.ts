/** `kernel install`: checks the built images are unchanged, then installs them under Kata's names. */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { sha256File } from '../core/hash.js';
import { step } from '../core/log.js';
import { loadState } from './state.js';
import { installFiles, installNames, type InstallAction, type InstallResult } from './install.js';
import { resolveOptions, type KernelOptions } from './resolve.js';

export interface InstallOptions extends KernelOptions {
  /** DESTDIR-like root; files go to <prefix>/usr/share/kata-containers (Kata: DESTDIR=/ PREFIX=/usr). */
  prefix?: string;
}

export interface KernelInstallResult extends InstallResult {
  vmlinuz: string;
  vmlinux: string;
  config: string;
  version: string;
  configVersion: string;
}

export async function installKernel(opts: InstallOptions): Promise<KernelInstallResult> {
  const r = resolveOptions(opts);
  const state = await loadState(r, 'install');
  if (!state.build?.images) throw new OsbuilderError('INPUT_NOT_FOUND', `${r.kernelDir} has no built kernel`, 'run osbuilder kernel build first');
  for (const a of [state.build.vmlinuz, state.build.vmlinux]) {
    const abs = join(r.kernelDir, a.path);
    const st = await stat(abs).catch(() => undefined);
    if (!st || st.size !== a.size || (await sha256File(abs)) !== a.sha256) {
      throw new OsbuilderError('VERIFY_FAILED', `${abs} changed or disappeared since the build`, 'rerun osbuilder kernel build');
    }
  }
  const names = installNames({
    prefix: resolve(opts.prefix ?? '/'),
    version: state.version,
    configVersion: state.configVersion,
    gpu: state.gpu,
    confidential: state.confidential,
  });
  const cfgPath = join(r.kernelDir, '.config');
  const actions: InstallAction[] = [
    { kind: 'file', from: join(r.kernelDir, state.build.vmlinuz.path), to: join(names.dir, names.vmlinuz), sha256: state.build.vmlinuz.sha256 },
    { kind: 'file', from: join(r.kernelDir, state.build.vmlinux.path), to: join(names.dir, names.vmlinux), sha256: state.build.vmlinux.sha256 },
    { kind: 'file', from: cfgPath, to: join(names.dir, names.config), sha256: state.configSha256 },
    { kind: 'link', target: names.vmlinuz, to: join(names.dir, names.vmlinuzLink) },
    { kind: 'link', target: names.vmlinux, to: join(names.dir, names.vmlinuxLink) },
  ];
  const res = await step(`install into ${names.dir}`, () => installFiles(names.dir, actions, !!opts.force));
  return {
    ...res,
    vmlinuz: join(names.dir, names.vmlinuz),
    vmlinux: join(names.dir, names.vmlinux),
    config: join(names.dir, names.config),
    version: state.version,
    configVersion: state.configVersion,
  };
}
