/**
 * What the tests that boot the guest kernel through `osbuilder boot` share
 * (boot-e2e, hotplug, verity-boot): VM names of their own, an initrd with the
 * agent as init, and a --json boot after which nothing of the VM is left.
 */
import { join } from 'node:path';
import { buildInitrd } from '../../initrd-builder/index.js';
import type { BootResult } from '../../runtime/index.js';
import { agentRootfs } from './agent.js';
import { runCli, type CliResult } from './cli.js';
import { nothingLeft } from './vm-left.js';

/** Names `<prefix>-<pid>-<n>`: this process's VMs only, so a leftover check finds no one else's. */
export function vmNamer(prefix: string): () => string {
  const tag = `${prefix}-${process.pid}`;
  let seq = 0;
  return () => `${tag}-${++seq}`;
}

/** The agent rootfs (support/agent.ts) in `dir`/<name>-root, `init` as its /init if given, packed as `dir`/<name>.initrd. */
export async function agentInitrd(dir: string, name: string, init?: string): Promise<string> {
  const root = await agentRootfs(join(dir, `${name}-root`), init ? { init } : {});
  const output = join(dir, `${name}.initrd`);
  await buildInitrd({ rootfs: root, output });
  return output;
}

/**
 * `osbuilder boot --json` of the VM `name` with `kernel`, 512 MiB and a 300 s
 * timeout, `args`, and `command` in the default container; then no QEMU and
 * no shared directory of `name` may be left.
 */
export async function bootJson<T = BootResult>(name: string, kernel: string, args: string[], command: string[]): Promise<CliResult<T>> {
  const r = await runCli<T>(['boot', '--json', '--name', name, '--kernel', kernel, '--memory', '512', '--timeout', '300', ...args, '--', ...command], {
    timeout: 10 * 60_000,
  });
  await nothingLeft(name);
  return r;
}
