/**
 * `osbuilder boot`: resolve the configuration, pick the accelerator and the
 * agent channel, plan QEMU (with the sandbox's shared directory), start it,
 * wait for the agent, create the sandbox, run a container (or the caller's
 * session), then stop the VM as kata-runtime does. QEMU never outlives this
 * function, and the shared directory is cleaned up.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { OsbuilderError } from '../core/errors.js';
import { checkOutputPath } from '../core/atomic.js';
import { onInterrupt } from '../core/cleanup.js';
import { step, warn } from '../core/log.js';
import { defaultAgentBinary } from '../agent/index.js';
import { AgentService, type RpcObserver } from './agent-client.js';
import { applyOverrides, defaultConfig, findConfig, loadConfig, rootPortCount, type ConfigOverrides, type GuestArch, type RuntimeConfig } from './config.js';
import { Hotplug, noRootPortError, type DeviceSpec, type ObjectSpec } from './hotplug.js';
import { resolveContainer, runContainer, type ContainerRequest, type ContainerResult, type ResolvedContainer } from './container-run.js';
import { agentChannelFor, findQemu, hostGuestArch, resolveAccel, vhostVsockState } from './host.js';
import { imageRootDevice, planQemu, type Accel, type AgentChannel, type QemuPlan, type RootDevice } from './qemu.js';
import { GuestSandbox } from './sandbox.js';
import { SharedDir } from './shared-fs.js';
import { Vm } from './vm.js';

export const ACCELS = ['auto', 'kvm', 'tcg'] as const;
export const CHANNELS = ['auto', 'serial', 'vsock'] as const;

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** --config / $KATA_CONF_FILE / Kata's default paths / defaults, then command-line overrides. */
export async function resolveRuntimeConfig(
  opts: { configFile?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv; arch?: GuestArch } = {},
): Promise<RuntimeConfig> {
  const arch = opts.arch ?? hostGuestArch();
  const file = await findConfig(opts.configFile, opts.env ?? process.env, exists);
  const base = file ? await loadConfig(file, arch) : defaultConfig(arch);
  return applyOverrides(base, opts.overrides ?? {});
}

/** What a session gets: the created sandbox (its client speaks only Kata's RPCs). */
export interface BootSession {
  sandbox: GuestSandbox;
  hostname: string;
  /** The guest's arch (its containers need binaries for it). */
  arch: GuestArch;
  /** PCIe hotplug into the VM's root ports (pcie_root_port). */
  hotplug: Hotplug;
}

/** Devices to hot-add once the sandbox is up (osbuilder boot --hot-add / --hot-add-object). */
export interface HotAdd {
  objects: ObjectSpec[];
  devices: DeviceSpec[];
}

export interface BootOptions<S = unknown> {
  /** Guest arch; default the host's. Another arch boots under TCG with qemu-system-<arch>. */
  arch?: GuestArch;
  configFile?: string;
  overrides?: ConfigOverrides;
  accel?: string;
  /** Seconds to wait for the agent; default: agent.kata.dial_timeout. */
  timeoutSec?: number;
  consoleLog?: string;
  /** A container to run once the sandbox is up (osbuilder boot -- <cmd>). */
  container?: ContainerRequest;
  /** Or the caller's own work with the sandbox (the boot test of osbuilder build). */
  session?: (s: BootSession) => Promise<S>;
  /** Seconds the container or session may take (default: no limit). */
  commandTimeoutSec?: number;
  /** QEMU -name (also a marker to find the process); the sandbox id derives from it. */
  name?: string;
  /** CreateSandbox's hostname (default "osbuilder"). */
  hostname?: string;
  channel?: string;
  console?: 'hvc' | 'serial';
  env?: NodeJS.ProcessEnv;
  onConsole?: (text: string) => void;
  observe?: RpcObserver;
  hotAdd?: HotAdd;
}

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

async function requireFile(path: string, what: string, key: string, hint: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new OsbuilderError('INPUT_NOT_FOUND', `${what} ${path} does not exist (${key})`, hint);
  if (!st.isFile()) throw new OsbuilderError('INPUT_INVALID', `${what} ${path} is not a regular file (${key})`, hint);
  if (st.size === 0) throw new OsbuilderError('INPUT_INVALID', `${what} ${path} is empty (${key})`, hint);
}

/** The root device from the configuration: its files checked before QEMU starts. */
async function rootDevice(hv: RuntimeConfig['hypervisor']): Promise<RootDevice> {
  await requireFile(hv.kernel, 'kernel', '--kernel / hypervisor.qemu.kernel', 'build one (osbuilder kernel build) or give its path with --kernel');
  if (hv.image) {
    await requireFile(hv.image, 'image', '--image / hypervisor.qemu.image', 'build one (osbuilder image) or give its path with --image');
    const size = (await stat(hv.image)).size;
    if (!hv.disableImageNvdimm && size % (2 * 1024 * 1024) !== 0) {
      throw new OsbuilderError(
        'INPUT_INVALID',
        `image ${hv.image} is ${size} bytes, not a multiple of 2 MiB: it cannot back an nvdimm (Kata's images are built in 128 MiB steps with a 2 MiB DAX header)`,
        'build the image with osbuilder image, or boot it as a virtio disk with --disable-image-nvdimm',
      );
    }
    return imageRootDevice(hv, resolve(hv.image), size);
  }
  if (hv.initrd) {
    if (hv.kernelVerityParams) warn('kernel_verity_params is ignored: the guest boots from an initrd, not an image');
    await requireFile(hv.initrd, 'initrd', '--initrd / hypervisor.qemu.initrd', 'build one (osbuilder initrd) or give its path with --initrd');
    return { kind: 'initrd', path: resolve(hv.initrd) };
  }
  throw new OsbuilderError(
    'USAGE',
    'nothing to boot: give --image or --initrd (or hypervisor.qemu.image / initrd in the configuration)',
    'e.g. osbuilder boot --kernel vmlinux --initrd kata.initrd',
  );
}

function checkChoice(value: string, choices: readonly string[], flag: string, what: string): void {
  if (!choices.includes(value)) throw new OsbuilderError('USAGE', `unknown ${what} ${JSON.stringify(value)}`, `use --${flag} ${choices.join(', ')}`);
}

/** vsock when asked or when auto finds /dev/vhost-vsock usable; virtio-serial otherwise. */
async function pickChannel(requested: string): Promise<{ kind: AgentChannel['kind']; reason: string }> {
  const vsock = await vhostVsockState();
  if (requested === 'serial') return { kind: 'serial', reason: 'requested' };
  if (requested === 'vsock') {
    if (!vsock.accessible)
      throw new OsbuilderError('UNSUPPORTED', '--channel vsock: /dev/vhost-vsock is not usable on this host', 'modprobe vhost_vsock, or use --channel serial');
    return { kind: 'vsock', reason: 'requested' };
  }
  const auto = agentChannelFor(vsock);
  return { kind: auto.auto, reason: auto.reason };
}

interface Prepared {
  config: RuntimeConfig;
  arch: GuestArch;
  root: RootDevice;
  qemu: { path: string; version: string | null };
  accel: { accel: Accel; reason: string };
  channel: { kind: AgentChannel['kind']; reason: string };
  container: ResolvedContainer | null;
  timeoutSec: number;
  rootPorts: number;
}

/** Everything that can be wrong with the input, found before any VM or directory exists. */
async function prepare(opts: BootOptions<unknown>): Promise<Prepared> {
  checkChoice(opts.accel ?? 'auto', ACCELS, 'accel', 'accelerator');
  checkChoice(opts.channel ?? 'auto', CHANNELS, 'channel', 'agent channel');
  const arch = opts.arch ?? hostGuestArch();
  const config = await resolveRuntimeConfig({
    ...(opts.configFile ? { configFile: opts.configFile } : {}),
    ...(opts.overrides ? { overrides: opts.overrides } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    arch,
  });
  for (const w of config.warnings) warn(w);
  const timeoutSec = opts.timeoutSec ?? config.agent.dialTimeout;
  if (!(timeoutSec > 0)) throw new OsbuilderError('USAGE', `--timeout must be a positive number of seconds, got ${timeoutSec}`, 'e.g. --timeout 60');
  const hv = config.hypervisor;
  const root = await rootDevice(hv);
  if (!(await stat(hv.entropySource).catch(() => undefined))) {
    throw new OsbuilderError('INPUT_NOT_FOUND', `entropy source ${hv.entropySource} does not exist (hypervisor.qemu.entropy_source)`, 'use /dev/urandom');
  }
  const container = opts.container ? await resolveContainer({ ...opts.container, arch, ...(opts.hostname ? { hostname: opts.hostname } : {}) }) : null;
  if ((container || opts.session) && hv.sharedFs === 'none') {
    throw new OsbuilderError('CONFIG_INVALID', 'hypervisor.qemu.shared_fs is "none": a container rootfs cannot reach the guest', 'set shared_fs = "virtio-9p"');
  }
  const rootPorts = rootPortCount(hv);
  const first = opts.hotAdd?.devices[0];
  if (first && rootPorts === 0) throw noRootPortError(first.id);
  const qemu = await findQemu(hv.path);
  if (!qemu.path) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      `QEMU ${hv.path} is not installed (hypervisor.qemu.path)`,
      `install qemu-system-${arch === 'aarch64' ? 'arm' : 'x86'} (scripts/setup-host.sh does) or set hypervisor.qemu.path`,
    );
  }
  if (opts.consoleLog) await checkOutputPath(resolve(opts.consoleLog), { flag: '--console-log', name: 'console.log' });
  const accel = await resolveAccel(opts.accel ?? 'auto', qemu.path, arch);
  const channel = await pickChannel(opts.channel ?? 'auto');
  return { arch, config, root, qemu: { path: qemu.path, version: qemu.version }, accel, channel, container, timeoutSec, rootPorts };
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
    name,
    debug: hv.enableDebug,
    agentDebug: p.config.agent.enableDebug,
  });
}

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

export async function boot<S = unknown>(opts: BootOptions<S>): Promise<BootResult<S>> {
  const total0 = performance.now();
  const p = await prepare(opts as BootOptions<unknown>);
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
    const channel: AgentChannel =
      p.channel.kind === 'vsock' ? { kind: 'vsock', cid: randomInt(3, 0x7fffffff) } : { kind: 'serial', socket: join(runDir, 'agent.sock') };
    if (p.config.hypervisor.sharedFs === 'virtio-9p') shared = await SharedDir.create(sandboxId);
    const plan = planFor(p, opts as BootOptions<unknown>, name, runDir, channel, shared);
    const vsockRelay = channel.kind === 'vsock' ? (await defaultAgentBinary()).path : undefined;
    vm = Vm.start({
      plan,
      channel,
      qmpSocket: join(runDir, 'qmp.sock'),
      ...(opts.consoleLog ? { consoleLog: resolve(opts.consoleLog) } : {}),
      ...(vsockRelay ? { vsockRelay } : {}),
      ...(opts.onConsole ? { onConsole: opts.onConsole } : {}),
      ...(opts.observe ? { observe: opts.observe } : {}),
    });
    const started = vm;
    const { client, readyMs } = await step(`boot ${name} (${p.accel.accel}, ${p.root.kind} ${p.root.path})`, () =>
      started.waitForAgent(started.startedAt + p.timeoutSec * 1000),
    );
    const version = await client.version(10_000);
    const details = (await client.call(AgentService.method.getGuestDetails, { memBlockSize: true, memHotplugProbe: true }, { timeoutMs: 10_000 })).agentDetails;
    const hostname = opts.hostname ?? p.container?.hostname ?? 'osbuilder';
    let container: ContainerResult | null = null;
    let session: S | null = null;
    const c0 = performance.now();
    const hotplug = new Hotplug(join(runDir, 'qmp.sock'), p.rootPorts);
    if (shared) {
      const sandbox = new GuestSandbox(client, shared, sandboxId, p.config.hypervisor.msize9p);
      try {
        await sandbox.create(hostname);
        if (opts.hotAdd) await hotAddAll(hotplug, opts.hotAdd);
        if (p.container) container = await guarded(started, runContainer(sandbox, p.container, opts.container?.io ?? {}), opts.commandTimeoutSec, 'container');
        if (opts.session) session = await guarded(started, opts.session({ sandbox, hostname, arch: p.arch, hotplug }), opts.commandTimeoutSec, 'boot test');
      } catch (err) {
        // The whole console is in once QEMU is gone: a dm-verity report explains the failure.
        await started.kill();
        throw started.verityError(`then: ${(err as Error).message}`) ?? err;
      }
    }
    const containerMs = container || session !== null ? Math.round(performance.now() - c0) : null;
    const s0 = performance.now();
    const shutdown = await started.shutdown();
    // A block the guest could not read is a failed boot, whatever the command made of it.
    const verity = started.verityError(container ? `the container exited with ${container.exitCode}` : 'while the guest ran');
    if (verity) throw verity;
    return {
      name,
      sandboxId,
      accel: p.accel.accel,
      accelReason: p.accel.reason,
      channel: channel.kind,
      channelReason: p.channel.reason,
      qemu: { path: p.qemu.path, version: p.qemu.version, argv: [plan.cmd, ...plan.args] },
      kernel: resolve(p.config.hypervisor.kernel),
      image: p.root.kind === 'image' ? p.root.path : null,
      initrd: p.root.kind === 'initrd' ? p.root.path : null,
      kernelParams: plan.kernelParams,
      agent: {
        version: version.agentVersion,
        grpcVersion: version.grpcVersion,
        initDaemon: details?.initDaemon ?? false,
        storageHandlers: details?.storageHandlers ?? [],
      },
      container,
      session,
      hotplugged: hotplug.devices,
      shutdown,
      consoleLog: opts.consoleLog ? resolve(opts.consoleLog) : null,
      timings: {
        qemuStartToAgentReadyMs: Math.round(readyMs),
        containerMs,
        shutdownMs: Math.round(performance.now() - s0),
        totalMs: Math.round(performance.now() - total0),
      },
      warnings: p.config.warnings,
    };
  } finally {
    await cleanup().finally(unregister);
  }
}
