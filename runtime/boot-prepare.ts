/**
 * What `osbuilder boot` checks before anything exists: the options, the
 * resolved configuration (--config / $KATA_CONF_FILE / Kata's paths, then the
 * overrides), the kernel and root device files, QEMU, the accelerator and the
 * agent channel.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { checkOutputPath } from '../core/atomic.js';
import { warn } from '../core/log.js';
import { MiB } from '../core/vocab.js';
import type { RpcObserver } from './agent-client.js';
import {
  applyOverrides,
  configFileArch,
  defaultConfig,
  findConfig,
  loadConfig,
  rootPortCount,
  type ConfigOverrides,
  type GuestArch,
  type HypervisorConfig,
  type RuntimeConfig,
} from './config.js';
import { noRootPortError, type DeviceSpec, type Hotplug, type ObjectSpec } from './hotplug.js';
import { resolveContainer, type ContainerRequest, type ResolvedContainer } from './container-run.js';
import { agentChannelFor, findQemu, hostGuestArch, resolveAccel, vhostVsockState } from './host.js';
import { imageRootDevice, type Accel, type AgentChannel, type RootDevice } from './qemu.js';
import type { GuestSandbox } from './sandbox.js';

export const ACCELS = ['auto', 'kvm', 'tcg'] as const;
export const CHANNELS = ['auto', 'serial', 'vsock'] as const;

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/** --config / $KATA_CONF_FILE / Kata's default paths / defaults, then command-line overrides. */
export async function resolveRuntimeConfig(
  opts: { configFile?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv; arch?: GuestArch } = {},
): Promise<RuntimeConfig> {
  const file = await findConfig(opts.configFile, opts.env ?? process.env, exists);
  // Kata's files are per arch: without --arch, the file's QEMU says which guest it is for.
  const arch = opts.arch ?? (file ? await configFileArch(file) : undefined) ?? hostGuestArch();
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
    if (!hv.disableImageNvdimm && size % (2 * MiB) !== 0) {
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

export interface Prepared {
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

/** The entropy source and the firmware the configuration names exist here. */
async function checkHostFiles(hv: HypervisorConfig, arch: GuestArch): Promise<void> {
  if (!(await stat(hv.entropySource).catch(() => undefined))) {
    throw new OsbuilderError('INPUT_NOT_FOUND', `entropy source ${hv.entropySource} does not exist (hypervisor.qemu.entropy_source)`, 'use /dev/urandom');
  }
  if (hv.firmware && !(await stat(hv.firmware).catch(() => undefined))) {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `firmware ${hv.firmware} does not exist (hypervisor.qemu.firmware)`,
      arch === 'aarch64' ? 'install qemu-efi-aarch64 (scripts/setup-host.sh does), or set firmware = ""' : 'fix the path, or set firmware = ""',
    );
  }
}

/** Everything that can be wrong with the input, found before any VM or directory exists. */
export async function prepare(opts: BootOptions<unknown>): Promise<Prepared> {
  checkChoice(opts.accel ?? 'auto', ACCELS, 'accel', 'accelerator');
  checkChoice(opts.channel ?? 'auto', CHANNELS, 'channel', 'agent channel');
  const config = await resolveRuntimeConfig({
    ...(opts.configFile ? { configFile: opts.configFile } : {}),
    ...(opts.overrides ? { overrides: opts.overrides } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.arch ? { arch: opts.arch } : {}),
  });
  const arch = config.arch;
  for (const w of config.warnings) warn(w);
  const timeoutSec = opts.timeoutSec ?? config.agent.dialTimeout;
  if (!(timeoutSec > 0)) throw new OsbuilderError('USAGE', `--timeout must be a positive number of seconds, got ${timeoutSec}`, 'e.g. --timeout 60');
  const hv = config.hypervisor;
  const root = await rootDevice(hv);
  await checkHostFiles(hv, arch);
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
