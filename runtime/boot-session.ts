/**
 * The work `osbuilder boot` does in a booted VM: create the sandbox, hot-add
 * devices, then run the container or the caller's session, each raced
 * against the VM's end and the command timeout.
 */
import { OsbuilderError } from '../core/errors.js';
import { step } from '../core/log.js';
import type { AgentClient } from './agent-client.js';
import type { BootOptions, HotAdd, Prepared } from './boot-prepare.js';
import { runContainer, type ContainerResult } from './container-run.js';
import type { Hotplug } from './hotplug.js';
import { GuestSandbox } from './sandbox.js';
import type { SharedDir } from './shared-fs.js';
import type { Vm } from './vm.js';

async function hotAddAll(hotplug: Hotplug, h: HotAdd): Promise<void> {
  for (const o of h.objects) await step(`hot-add object ${o.qomType} ${o.id}`, () => hotplug.addObject(o));
  for (const d of h.devices) await step(`hot-add ${d.driver} ${d.id}`, () => hotplug.add(d));
}

/** Races the container or session against the VM's end and the command timeout. */
async function guarded<T>(vm: Vm, work: Promise<T>, limitSec: number | undefined, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const races: Array<Promise<T>> = [
    work,
    vm.exited.then(() => {
      throw (
        vm.failure(`while the ${what} ran`) ??
        new OsbuilderError('BOOT_FAILED', `the VM stopped while the ${what} ran`, 'see the guest console log (--console-log)')
      );
    }),
  ];
  if (limitSec)
    races.push(
      new Promise<T>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new OsbuilderError('COMMAND_TIMEOUT', `the ${what} did not finish within ${limitSec} s`, 'raise --command-timeout')),
            limitSec * 1000,
          )),
      ),
    );
  try {
    return await Promise.race(races);
  } finally {
    clearTimeout(timer);
  }
}

/** The sandbox in the booted VM and what runs in it. */
export interface SandboxRun {
  vm: Vm;
  client: AgentClient;
  shared: SharedDir;
  sandboxId: string;
  hostname: string;
  hotplug: Hotplug;
}

/**
 * Creates the sandbox, hot-adds the devices, then runs the container and/or
 * the session. On failure the VM is killed first: with the whole console in,
 * a dm-verity report explains the failure.
 */
export async function runInSandbox<S>(p: Prepared, opts: BootOptions<S>, r: SandboxRun): Promise<{ container: ContainerResult | null; session: S | null }> {
  const sandbox = new GuestSandbox(r.client, r.shared, r.sandboxId, p.config.hypervisor.msize9p);
  let container: ContainerResult | null = null;
  let session: S | null = null;
  try {
    await sandbox.create(r.hostname, p.config.agent.kernelModules);
    if (opts.hotAdd) await hotAddAll(r.hotplug, opts.hotAdd);
    if (p.container) container = await guarded(r.vm, runContainer(sandbox, p.container, opts.container?.io ?? {}), opts.commandTimeoutSec, 'container');
    if (opts.session)
      session = await guarded(r.vm, opts.session({ sandbox, hostname: r.hostname, arch: p.arch, hotplug: r.hotplug }), opts.commandTimeoutSec, 'boot test');
  } catch (err) {
    await r.vm.kill();
    throw r.vm.verityError(`then: ${(err as Error).message}`) ?? err;
  }
  return { container, session };
}
