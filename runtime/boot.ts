/**
 * `osbuilder boot`: resolve the configuration, pick the accelerator and the
 * agent channel, plan QEMU, start it, wait for the agent, run the command,
 * shut down. QEMU never outlives this function.
 */
import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { OsbuilderError } from '../core/errors.js';
import { checkOutputPath } from '../core/atomic.js';
import { step, warn } from '../core/log.js';
import { defaultAgentBinary } from '../agent/index.js';
import { applyOverrides, defaultConfig, findConfig, loadConfig, type ConfigOverrides, type GuestArch, type RuntimeConfig } from './config.js';
import { findQemu, hostGuestArch, resolveAccel } from './host.js';
import { planQemu, type Accel, type AgentChannel, type RootDevice } from './qemu.js';
import { Vm } from './vm.js';

export const ACCELS = ['auto', 'kvm', 'tcg'] as const;
export const CHANNELS = ['auto', 'serial', 'vsock'] as const;

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** --config / $KATA_CONF_FILE / Kata's default paths / defaults, then command-line overrides. */
export async function resolveRuntimeConfig(opts: { configFile?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv; arch?: GuestArch } = {}): Promise<RuntimeConfig> {
  const arch = opts.arch ?? hostGuestArch();
  const file = await findConfig(opts.configFile, opts.env ?? process.env, exists);
  const base = file ? await loadConfig(file, arch) : defaultConfig(arch);
  return applyOverrides(base, opts.overrides ?? {});
}

export interface BootOptions {
  configFile?: string;
  overrides?: ConfigOverrides;
  accel?: string;
  /** Seconds to wait for the agent; default: agent.kata.dial_timeout. */
  timeoutSec?: number;
  consoleLog?: string;
  /** Command to run in the guest through osbuilder.Guest/Exec. */
  command?: string[];
  commandTimeoutSec?: number;
  /** QEMU -name (also a marker to find the process). */
  name?: string;
  channel?: string;
  console?: 'hvc' | 'serial';
  env?: NodeJS.ProcessEnv;
  onConsole?: (text: string) => void;
}

export interface BootResult {
  name: string;
  accel: Accel;
  accelReason: string;
  channel: AgentChannel['kind'];
  qemu: { path: string; version: string | null; argv: string[] };
  kernel: string;
  image: string | null;
  initrd: string | null;
  kernelParams: string[];
  agent: { version: string; grpcVersion: string };
  command: null | { argv: string[]; exitCode: number; stdout: string; stderr: string; timedOut: boolean; signal: number; truncated: boolean };
  shutdown: 'clean' | 'killed';
  consoleLog: string | null;
  timings: { qemuStartToAgentReadyMs: number; commandMs: number | null; shutdownMs: number; totalMs: number };
  warnings: string[];
}

async function requireFile(path: string, what: string, key: string, hint: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new OsbuilderError('INPUT_NOT_FOUND', `${what} ${path} does not exist (${key})`, hint);
  if (!st.isFile()) throw new OsbuilderError('INPUT_INVALID', `${what} ${path} is not a regular file (${key})`, hint);
  if (st.size === 0) throw new OsbuilderError('INPUT_INVALID', `${what} ${path} is empty (${key})`, hint);
}

async function vhostVsockUsable(): Promise<boolean> {
  return access('/dev/vhost-vsock', constants.R_OK | constants.W_OK).then(() => true, () => false);
}

export async function boot(opts: BootOptions): Promise<BootResult> {
  const total0 = performance.now();
  const accelRequested = opts.accel ?? 'auto';
  if (!(ACCELS as readonly string[]).includes(accelRequested)) {
    throw new OsbuilderError('USAGE', `unknown accelerator ${JSON.stringify(accelRequested)}`, 'use --accel auto, kvm or tcg');
  }
  const channelRequested = opts.channel ?? 'auto';
  if (!(CHANNELS as readonly string[]).includes(channelRequested)) {
    throw new OsbuilderError('USAGE', `unknown agent channel ${JSON.stringify(channelRequested)}`, 'use --channel auto, serial or vsock');
  }
  const arch = hostGuestArch();
  const config = await resolveRuntimeConfig({ ...(opts.configFile ? { configFile: opts.configFile } : {}), ...(opts.overrides ? { overrides: opts.overrides } : {}), ...(opts.env ? { env: opts.env } : {}), arch });
  for (const w of config.warnings) warn(w);
  const timeoutSec = opts.timeoutSec ?? config.agent.dialTimeout;
  if (!(timeoutSec > 0)) throw new OsbuilderError('USAGE', `--timeout must be a positive number of seconds, got ${timeoutSec}`, 'e.g. --timeout 60');
  const hv = config.hypervisor;

  await requireFile(hv.kernel, 'kernel', '--kernel / hypervisor.qemu.kernel', 'build one (osbuilder kernel build) or give its path with --kernel');
  let root: RootDevice;
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
    root = { kind: 'image', path: resolve(hv.image), sizeBytes: size, nvdimm: !hv.disableImageNvdimm, rootfsType: hv.rootfsType };
  } else if (hv.initrd) {
    await requireFile(hv.initrd, 'initrd', '--initrd / hypervisor.qemu.initrd', 'build one (osbuilder initrd) or give its path with --initrd');
    root = { kind: 'initrd', path: resolve(hv.initrd) };
  } else {
    throw new OsbuilderError('USAGE', 'nothing to boot: give --image or --initrd (or hypervisor.qemu.image / initrd in the configuration)', 'e.g. osbuilder boot --kernel vmlinux --initrd kata.initrd');
  }
  if (!(await exists(hv.entropySource))) {
    throw new OsbuilderError('INPUT_NOT_FOUND', `entropy source ${hv.entropySource} does not exist (hypervisor.qemu.entropy_source)`, 'use /dev/urandom');
  }
  const qemu = await findQemu(hv.path);
  if (!qemu.path) {
    throw new OsbuilderError('TOOL_MISSING', `QEMU ${hv.path} is not installed (hypervisor.qemu.path)`, `install qemu-system-${arch === 'aarch64' ? 'arm' : 'x86'} (scripts/setup-host.sh does) or set hypervisor.qemu.path`);
  }
  if (opts.consoleLog) await checkOutputPath(resolve(opts.consoleLog));

  const { accel, reason } = await resolveAccel(accelRequested, qemu.path);
  let channelKind: AgentChannel['kind'] = channelRequested === 'auto' ? ((await vhostVsockUsable()) ? 'vsock' : 'serial') : (channelRequested as AgentChannel['kind']);
  if (channelKind === 'vsock' && !(await vhostVsockUsable())) {
    throw new OsbuilderError('UNSUPPORTED', '--channel vsock: /dev/vhost-vsock is not usable on this host', 'modprobe vhost_vsock, or use --channel serial');
  }
  const name = opts.name ?? `osbuilder-vm-${process.pid}-${randomInt(1 << 30).toString(36)}`;
  const runDir = await mkdtemp(join(tmpdir(), 'osb-vm-'));
  const channel: AgentChannel = channelKind === 'vsock' ? { kind: 'vsock', cid: randomInt(3, 0x7fffffff) } : { kind: 'serial', socket: join(runDir, 'agent.sock') };
  channelKind = channel.kind;
  const vsockRelay = channel.kind === 'vsock' ? (await defaultAgentBinary()).path : undefined;
  const plan = planQemu({
    arch,
    qemu: qemu.path,
    machineType: hv.machineType,
    accel,
    kernel: resolve(hv.kernel),
    root,
    vcpus: hv.defaultVcpus,
    memoryMiB: hv.defaultMemory,
    extraKernelParams: hv.kernelParams,
    channel,
    qmpSocket: join(runDir, 'qmp.sock'),
    console: opts.console ?? 'hvc',
    entropySource: hv.entropySource,
    name,
    debug: hv.enableDebug,
    agentDebug: config.agent.enableDebug,
  });

  let vm: Vm | undefined;
  try {
    vm = Vm.start({ plan, channel, ...(opts.consoleLog ? { consoleLog: resolve(opts.consoleLog) } : {}), ...(vsockRelay ? { vsockRelay } : {}), ...(opts.onConsole ? { onConsole: opts.onConsole } : {}) });
    const started = vm;
    const deadline = started.startedAt + timeoutSec * 1000;
    const { client, readyMs } = await step(`boot ${name} (${accel}, ${root.kind} ${root.path})`, () => started.waitForAgent(deadline));
    const version = await client.version(10_000);
    let command: BootResult['command'] = null;
    let commandMs: number | null = null;
    if (opts.command && opts.command.length > 0) {
      const c0 = performance.now();
      const limitMs = opts.commandTimeoutSec ? opts.commandTimeoutSec * 1000 : 0;
      const r = await Promise.race([
        client.exec({ argv: opts.command, ...(limitMs ? { timeoutMs: limitMs } : {}) }, limitMs ? { waitMs: limitMs + 30_000 } : {}),
        started.exited.then(() => {
          throw started.failure('while the command ran') ?? new OsbuilderError('BOOT_FAILED', 'the VM stopped while the command ran', '');
        }),
      ]);
      commandMs = performance.now() - c0;
      command = { argv: opts.command, exitCode: r.exitCode, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), timedOut: r.timedOut, signal: r.signal, truncated: r.truncated };
    }
    const s0 = performance.now();
    const shutdown = await started.shutdown();
    const shutdownMs = performance.now() - s0;
    return {
      name,
      accel,
      accelReason: reason,
      channel: channelKind,
      qemu: { path: qemu.path, version: qemu.version, argv: [plan.cmd, ...plan.args] },
      kernel: resolve(hv.kernel),
      image: root.kind === 'image' ? root.path : null,
      initrd: root.kind === 'initrd' ? root.path : null,
      kernelParams: plan.kernelParams,
      agent: { version: version.agentVersion, grpcVersion: version.grpcVersion },
      command,
      shutdown,
      consoleLog: opts.consoleLog ? resolve(opts.consoleLog) : null,
      timings: { qemuStartToAgentReadyMs: Math.round(readyMs), commandMs: commandMs === null ? null : Math.round(commandMs), shutdownMs: Math.round(shutdownMs), totalMs: Math.round(performance.now() - total0) },
      warnings: config.warnings,
    };
  } finally {
    await vm?.kill();
    await rm(runDir, { recursive: true, force: true });
  }
}
