/**
 * `osbuilder boot`: resolve the configuration, pick the accelerator and the
 * agent channel (boot-prepare.ts), plan QEMU (with the sandbox's shared
 * directory), start it, wait for the agent, create the sandbox, run a
 * container or the caller's session (boot-session.ts), then stop the VM as
 * kata-runtime does. QEMU never outlives this function, and the shared
 * directory is cleaned up.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { onInterrupt } from '../core/cleanup.js';
import { step } from '../core/log.js';
import { defaultAgentBinary } from '../agent/index.js';
import { type AgentClient, AgentService } from './agent-client.js';
import { prepare, type BootOptions, type Prepared } from './boot-prepare.js';
import { runInSandbox } from './boot-session.js';
import type { ContainerResult } from './container-run.js';
import { Hotplug } from './hotplug.js';
import { planQemu, type Accel, type AgentChannel, type QemuPlan } from './qemu.js';
import { SharedDir } from './shared-fs.js';
import { Vm } from './vm.js';

export interface BootResult<S = unknown> {
  name: string;
  sandboxId: string;
  accel: Accel;
  accelReason: string;
  channel: AgentChannel['kind'];
  channelReason: string;
  qemu: { path: string; version: string | null; argv: string[] };
  kernel: string;
  image: string | null;
  initrd: string | null;
  kernelParams: string[];
  agent: { version: string; grpcVersion: string; initDaemon: boolean; storageHandlers: string[] };
  container: ContainerResult | null;
  session: S | null;
  /** Devices hot-added (and still plugged at the end), with their root ports. */
  hotplugged: Array<{ id: string; port: string }>;
  shutdown: 'clean' | 'quit' | 'killed';
  consoleLog: string | null;
  timings: { qemuStartToAgentReadyMs: number; containerMs: number | null; shutdownMs: number; totalMs: number };
  warnings: string[];
}

function planFor(p: Prepared, opts: BootOptions<unknown>, name: string, runDir: string, channel: AgentChannel, shared: SharedDir | undefined): QemuPlan {
  const hv = p.config.hypervisor;
  return planQemu({
    arch: p.arch,
    qemu: p.qemu.path,
    machineType: hv.machineType,
    accel: p.accel.accel,
    kernel: resolve(hv.kernel),
    root: p.root,
    vcpus: hv.defaultVcpus,
    memoryMiB: hv.defaultMemory,
    extraKernelParams: hv.kernelParams,
    channel,
    ...(shared ? { sharedDir: shared.path } : {}),
    qmpSocket: join(runDir, 'qmp.sock'),
    rootPorts: p.rootPorts,
    console: opts.console ?? 'hvc',
    entropySource: hv.entropySource,
    ...(hv.firmware ? { firmware: hv.firmware } : {}),
    name,
    debug: hv.enableDebug,
    agentDebug: p.config.agent.enableDebug,
  });
}

/** The channel chosen, made concrete: a fresh vsock CID, or a socket in the run dir. */
function agentChannel(p: Prepared, runDir: string): AgentChannel {
  return p.channel.kind === 'vsock' ? { kind: 'vsock', cid: randomInt(3, 0x7fffffff) } : { kind: 'serial', socket: join(runDir, 'agent.sock') };
}

/** Starts QEMU on the plan (the vsock relay is osbuilder's own agent binary). */
async function startVm(opts: BootOptions<unknown>, plan: QemuPlan, channel: AgentChannel, runDir: string): Promise<Vm> {
  const vsockRelay = channel.kind === 'vsock' ? (await defaultAgentBinary()).path : undefined;
  return Vm.start({
    plan,
    channel,
    qmpSocket: join(runDir, 'qmp.sock'),
    ...(opts.consoleLog ? { consoleLog: resolve(opts.consoleLog) } : {}),
    ...(vsockRelay ? { vsockRelay } : {}),
    ...(opts.onConsole ? { onConsole: opts.onConsole } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
  });
}

/** The agent's version and guest details, as kata-runtime asks for them once it is up. */
async function agentInfo(client: AgentClient): Promise<BootResult['agent']> {
  const version = await client.version(10_000);
  const details = (await client.call(AgentService.method.getGuestDetails, { memBlockSize: true, memHotplugProbe: true }, { timeoutMs: 10_000 })).agentDetails;
  return {
    version: version.agentVersion,
    grpcVersion: version.grpcVersion,
    initDaemon: details?.initDaemon ?? false,
    storageHandlers: details?.storageHandlers ?? [],
  };
}

/** The result's description of what was booted, from the preparation and the plan. */
function booted(p: Prepared, plan: QemuPlan, channel: AgentChannel) {
  return {
    accel: p.accel.accel,
    accelReason: p.accel.reason,
    channel: channel.kind,
    channelReason: p.channel.reason,
    qemu: { path: p.qemu.path, version: p.qemu.version, argv: [plan.cmd, ...plan.args] },
    kernel: resolve(p.config.hypervisor.kernel),
    image: p.root.kind === 'image' ? p.root.path : null,
    initrd: p.root.kind === 'initrd' ? p.root.path : null,
    kernelParams: plan.kernelParams,
  };
}

/** Stops the VM as kata-runtime does; a block the guest could not read is a failed boot, whatever the command made of it. */
async function stopChecked(vm: Vm, container: ContainerResult | null): Promise<{ shutdown: BootResult['shutdown']; shutdownMs: number }> {
  const s0 = performance.now();
  const shutdown = await vm.shutdown();
  const verity = vm.verityError(container ? `the container exited with ${container.exitCode}` : 'while the guest ran');
  if (verity) throw verity;
  return { shutdown, shutdownMs: Math.round(performance.now() - s0) };
}

export async function boot<S = unknown>(opts: BootOptions<S>): Promise<BootResult<S>> {
  const total0 = performance.now();
  const o = opts as BootOptions<unknown>;
  const p = await prepare(o);
  const name = opts.name ?? `osbuilder-vm-${process.pid}-${randomInt(1 << 30).toString(36)}`;
  const sandboxId = name.replace(/[^A-Za-z0-9_.-]/g, '-');
  const runDir = await mkdtemp(join(tmpdir(), 'osb-vm-'));
  let shared: SharedDir | undefined;
  let vm: Vm | undefined;
  // Every way out from here (result, failure, interrupt) ends the VM and removes the run dir, whatever else fails.
  const cleanup = async () => {
    try {
      await vm?.kill();
      await shared?.cleanup();
    } finally {
      await rm(runDir, { recursive: true, force: true });
    }
  };
  const unregister = onInterrupt(cleanup);
  try {
    const channel = agentChannel(p, runDir);
    if (p.config.hypervisor.sharedFs === 'virtio-9p') shared = await SharedDir.create(sandboxId);
    const plan = planFor(p, o, name, runDir, channel, shared);
    const started = await startVm(o, plan, channel, runDir);
    vm = started;
    const { client, readyMs } = await step(`boot ${name} (${p.accel.accel}, ${p.root.kind} ${p.root.path})`, () =>
      started.waitForAgent(started.startedAt + p.timeoutSec * 1000),
    );
    const agent = await agentInfo(client);
    const hostname = opts.hostname ?? p.container?.hostname ?? 'osbuilder';
    const c0 = performance.now();
    const hotplug = new Hotplug(join(runDir, 'qmp.sock'), p.rootPorts);
    const ran = shared ? await runInSandbox(p, opts, { vm: started, client, shared, sandboxId, hostname, hotplug }) : { container: null, session: null };
    const containerMs = ran.container || ran.session !== null ? Math.round(performance.now() - c0) : null;
    const { shutdown, shutdownMs } = await stopChecked(started, ran.container);
    return {
      name,
      sandboxId,
      ...booted(p, plan, channel),
      agent,
      container: ran.container,
      session: ran.session,
      hotplugged: hotplug.devices,
      shutdown,
      consoleLog: opts.consoleLog ? resolve(opts.consoleLog) : null,
      timings: {
        qemuStartToAgentReadyMs: Math.round(readyMs),
        containerMs,
        shutdownMs,
        totalMs: Math.round(performance.now() - total0),
      },
      warnings: p.config.warnings,
    };
  } finally {
    await cleanup().finally(unregister);
  }
}
