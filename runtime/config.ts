/**
 * configuration.toml: the subset of Kata's [hypervisor.qemu] and [agent.kata]
 * that a boot test needs, parsed with a real TOML library. As in Kata, an
 * image and an initrd together are an error. Keys Kata knows but a boot test
 * does not use are accepted quietly; keys nobody knows are warnings. Every
 * error names the key.
 */
import { readFile } from 'node:fs/promises';
import { parse, TomlError } from 'smol-toml';
import { ARCH_FACTS, type Arch, type GuestArch } from '../core/arch.js';
import { OsbuilderError } from '../core/errors.js';
import { parseVerityParams } from '../core/verity-params.js';
import { FS_TYPES, type FsType } from '../core/vocab.js';
import { parseKernelModules, type KernelModuleSpec } from './kernel-modules.js';

/**
 * Kata's block_device_driver values (katautils blockDeviceDriver). In Kata it
 * drives container volumes only: the root image is always a virtio-blk disk
 * when nvdimm is off (qemuArchBase.appendBlockImage), and so it is here.
 */
export const BLOCK_DEVICE_DRIVERS = ['virtio-scsi', 'virtio-blk', 'virtio-mmio', 'nvdimm', 'virtio-blk-ccw'] as const;
export type BlockDeviceDriver = (typeof BLOCK_DEVICE_DRIVERS)[number];

export interface HypervisorConfig {
  path: string;
  kernel: string;
  image: string | null;
  initrd: string | null;
  machineType: string;
  kernelParams: string;
  defaultVcpus: number;
  defaultMemory: number;
  blockDeviceDriver: BlockDeviceDriver;
  disableImageNvdimm: boolean;
  rootfsType: FsType;
  /** Kata's kernel_verity_params ('' = the root is not verity-checked). */
  kernelVerityParams: string;
  entropySource: string;
  /** Kata's firmware: booted with -bios ('' = QEMU's own); an aarch64 nvdimm image needs UEFI's ACPI tables. */
  firmware: string;
  enableDebug: boolean;
  /** How containers' files reach the guest: virtio-9p (Kata's shared_fs), or none. */
  sharedFs: SharedFs;
  /** Kata's pcie_root_port: pcie-root-port devices for hotplugged (VFIO) devices, on q35. */
  pcieRootPort: number;
  /** Kata 2.x's hotplug_vfio_on_root_bus, and 3.x's hot_plug_vfio: where hotplugged devices go. */
  hotplugVfioOnRootBus: boolean;
  hotPlugVfio: HotPlugVfio;
  msize9p: number;
}

/** Kata's shared_fs values that osbuilder runs (virtio-fs needs virtiofsd, which Debian 12 lacks). */
export const SHARED_FS = ['virtio-9p', 'none'] as const;
/** Kata's hot_plug_vfio values; osbuilder plugs into root ports ("root-port"). */
export const HOT_PLUG_VFIO = ['no-port', 'bridge-port', 'root-port', 'switch-port'] as const;
export type HotPlugVfio = (typeof HOT_PLUG_VFIO)[number];
/** Kata's maxPCIeRootPort. */
export const MAX_PCIE_ROOT_PORTS = 16;
export type SharedFs = (typeof SHARED_FS)[number];

export interface AgentConfig {
  enableDebug: boolean;
  /** Seconds to wait for the agent (Kata: dial_timeout). */
  dialTimeout: number;
  /** Loaded by the agent at CreateSandbox (Kata: kernel_modules). */
  kernelModules: KernelModuleSpec[];
}

export interface RuntimeConfig {
  /** The file read, or null for built-in defaults. */
  source: string | null;
  /** The guest arch the configuration is for (its defaults, machine types and QEMU). */
  arch: GuestArch;
  hypervisor: HypervisorConfig;
  agent: AgentConfig;
  warnings: string[];
}

export { GUEST_ARCHES, type GuestArch } from '../core/arch.js';

/** Kata's install locations and defaults (configuration-qemu.toml). */
export const KATA_SHARE = '/usr/share/kata-containers';
export const DEFAULT_CONFIG_PATHS = ['/etc/kata-containers/configuration.toml', '/usr/share/defaults/kata-containers/configuration.toml'];

export function defaultConfig(arch: GuestArch = 'x86_64'): RuntimeConfig {
  return {
    source: null,
    arch,
    hypervisor: {
      path: ARCH_FACTS[arch].qemuSystem,
      kernel: `${KATA_SHARE}/vmlinux.container`,
      image: `${KATA_SHARE}/kata-containers.img`,
      initrd: null,
      machineType: ARCH_FACTS[arch].qemuMachine,
      kernelParams: '',
      defaultVcpus: 1,
      defaultMemory: 2048,
      // Kata's default; it does not change how the image is attached.
      blockDeviceDriver: 'virtio-scsi',
      disableImageNvdimm: false,
      rootfsType: 'ext4',
      kernelVerityParams: '',
      entropySource: '/dev/urandom',
      firmware: '',
      enableDebug: false,
      sharedFs: 'virtio-9p',
      msize9p: 8192,
      pcieRootPort: 0,
      hotplugVfioOnRootBus: false,
      hotPlugVfio: 'no-port',
    },
    agent: { enableDebug: false, dialTimeout: 45, kernelModules: [] },
    warnings: [],
  };
}

type Kind = 'string' | 'path' | 'int' | 'bool' | 'kernel-modules';
interface KeySpec {
  kind: Kind;
  set: (c: RuntimeConfig, v: never) => void;
  min?: number;
  max?: number;
  choices?: readonly string[];
  /** Further checks of a string value; throws an OsbuilderError naming `key`. */
  check?: (value: string, key: string) => void;
}

const QEMU_KEYS: Record<string, KeySpec> = {
  path: { kind: 'path', set: (c, v: string) => (c.hypervisor.path = v) },
  kernel: { kind: 'path', set: (c, v: string) => (c.hypervisor.kernel = v) },
  image: { kind: 'path', set: (c, v: string) => (c.hypervisor.image = v) },
  initrd: { kind: 'path', set: (c, v: string) => (c.hypervisor.initrd = v) },
  machine_type: { kind: 'string', choices: ['q35', 'pc', 'virt'], set: (c, v: string) => (c.hypervisor.machineType = v) },
  kernel_params: { kind: 'string', set: (c, v: string) => (c.hypervisor.kernelParams = v) },
  default_vcpus: { kind: 'int', min: 1, max: 288, set: (c, v: number) => (c.hypervisor.defaultVcpus = v) },
  default_memory: { kind: 'int', min: 64, max: 1 << 20, set: (c, v: number) => (c.hypervisor.defaultMemory = v) },
  block_device_driver: { kind: 'string', choices: BLOCK_DEVICE_DRIVERS, set: (c, v: BlockDeviceDriver) => (c.hypervisor.blockDeviceDriver = v) },
  disable_image_nvdimm: { kind: 'bool', set: (c, v: boolean) => (c.hypervisor.disableImageNvdimm = v) },
  rootfs_type: { kind: 'string', choices: FS_TYPES, set: (c, v: FsType) => (c.hypervisor.rootfsType = v) },
  kernel_verity_params: {
    kind: 'string',
    check: (v: string, key) => void parseVerityParams(v, key),
    set: (c, v: string) => (c.hypervisor.kernelVerityParams = v),
  },
  entropy_source: { kind: 'path', set: (c, v: string) => (c.hypervisor.entropySource = v) },
  firmware: { kind: 'string', set: (c, v: string) => (c.hypervisor.firmware = v) },
  enable_debug: { kind: 'bool', set: (c, v: boolean) => (c.hypervisor.enableDebug = v) },
  shared_fs: { kind: 'string', choices: SHARED_FS, set: (c, v: SharedFs) => (c.hypervisor.sharedFs = v) },
  msize_9p: { kind: 'int', min: 4096, max: 1 << 20, set: (c, v: number) => (c.hypervisor.msize9p = v) },
  pcie_root_port: { kind: 'int', min: 0, max: MAX_PCIE_ROOT_PORTS, set: (c, v: number) => (c.hypervisor.pcieRootPort = v) },
  hotplug_vfio_on_root_bus: { kind: 'bool', set: (c, v: boolean) => (c.hypervisor.hotplugVfioOnRootBus = v) },
  hot_plug_vfio: { kind: 'string', choices: HOT_PLUG_VFIO, set: (c, v: HotPlugVfio) => (c.hypervisor.hotPlugVfio = v) },
};

const AGENT_KEYS: Record<string, KeySpec> = {
  enable_debug: { kind: 'bool', set: (c, v: boolean) => (c.agent.enableDebug = v) },
  dial_timeout: { kind: 'int', min: 1, max: 3600, set: (c, v: number) => (c.agent.dialTimeout = v) },
  kernel_modules: { kind: 'kernel-modules', set: (c, v: KernelModuleSpec[]) => (c.agent.kernelModules = v) },
};

/** Keys of Kata's [hypervisor.qemu] that a boot test does not use: accepted without a warning. */
const KATA_QEMU_OTHER = new Set([
  'valid_hypervisor_paths',
  'ctlpath',
  'valid_ctlpaths',
  'firmware_volume',
  'machine_accelerators',
  'seccompsandbox',
  'cpu_features',
  'default_maxvcpus',
  'default_bridges',
  'default_maxmemory',
  'memory_slots',
  'memory_offset',
  'enable_virtio_mem',
  'virtio_fs_daemon',
  'valid_virtio_fs_daemon_paths',
  'virtio_fs_cache_size',
  'virtio_fs_queue_size',
  'virtio_fs_extra_args',
  'virtio_fs_cache',
  'block_device_aio',
  'block_device_cache_set',
  'block_device_cache_direct',
  'block_device_cache_noflush',
  'enable_iothreads',
  'indep_iothreads',
  'enable_mem_prealloc',
  'enable_hugepages',
  'enable_vhost_user_store',
  'vhost_user_store_path',
  'vhost_user_reconnect_timeout_sec',
  'enable_iommu',
  'enable_iommu_platform',
  'valid_vhost_user_store_paths',
  'file_mem_backend',
  'valid_file_mem_backends',
  'pflashes',
  'disable_block_device_use',
  'disable_nesting_checks',
  'disable_vhost_net',
  'guest_hook_path',
  'rx_rate_limiter_max_rate',
  'tx_rate_limiter_max_rate',
  'guest_memory_dump_path',
  'guest_memory_dump_paging',
  'enable_guest_swap',
  'use_legacy_serial',
  'disable_selinux',
  'disable_guest_selinux',
  'valid_entropy_sources',
  'confidential_guest',
  'sev_snp_guest',
  'cold_plug_vfio',
  'pcie_switch_port',
  'enable_annotations',
  'image_type',
  'reclaim_guest_freed_memory',
  'snp_id_block',
  'snp_id_auth',
  'snp_guest_policy',
  'extra_monitor_socket',
  'qgs_port',
]);
const KATA_AGENT_OTHER = new Set([
  'enable_tracing',
  'debug_console_enabled',
  'debug_console_vport',
  'container_pipe_size',
  'reconnect_timeout_ms',
  'enable_debug_console',
  'mem_agent_enable',
  'mem_agent_memcg_disable',
  'mem_agent_memcg_swap',
  'mem_agent_compact_disable',
  'cdh_api_timeout',
  'launch_process_timeout',
]);
/** Top-level tables of Kata's configuration.toml that a boot test ignores. */
const KATA_OTHER_TABLES = new Set(['runtime', 'factory', 'image', 'proxy', 'shim', 'netmon']);

function invalid(key: string, message: string, file: string | null): OsbuilderError {
  return new OsbuilderError('CONFIG_INVALID', `${key}: ${message}`, file ? `fix ${key} in ${file}` : `fix ${key}`);
}

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'an array' : v && typeof v === 'object' ? 'a table' : String(v);
}

function applyKey(config: RuntimeConfig, fullKey: string, spec: KeySpec, given: unknown, file: string | null): void {
  let value = given;
  switch (spec.kind) {
    case 'string':
    case 'path':
      if (typeof value !== 'string') throw invalid(fullKey, `expected a string, got ${describe(value)}`, file);
      if (spec.kind === 'path' && value === '' && !fullKey.endsWith('.image') && !fullKey.endsWith('.initrd'))
        throw invalid(fullKey, 'must not be empty', file);
      if (spec.choices && !spec.choices.includes(value)) throw invalid(fullKey, `must be one of ${spec.choices.join(', ')}, got ${describe(value)}`, file);
      if (spec.check) {
        try {
          spec.check(value, fullKey);
        } catch (err) {
          if (err instanceof OsbuilderError && file) throw new OsbuilderError(err.code, `${err.message} (in ${file})`, err.hint, { cause: err });
          throw err;
        }
      }
      break;
    case 'int': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw invalid(fullKey, `expected a whole number, got ${describe(value)}`, file);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        throw invalid(fullKey, `must be between ${spec.min} and ${spec.max}, got ${n}`, file);
      value = n;
      break;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw invalid(fullKey, `expected true or false, got ${describe(value)}`, file);
      break;
    case 'kernel-modules':
      if (!Array.isArray(value) || !value.every((e) => typeof e === 'string'))
        throw invalid(fullKey, `expected an array of strings, got ${describe(value)}`, file);
      value = parseKernelModules(value, file ? `${fullKey} in ${file}` : fullKey);
      break;
  }
  // An empty image/initrd means "not set", as in Kata's shipped files.
  if ((fullKey.endsWith('.image') || fullKey.endsWith('.initrd')) && value === '') value = null;
  spec.set(config, value as never);
}

function applyTable(
  config: RuntimeConfig,
  prefix: string,
  table: Record<string, unknown>,
  keys: Record<string, KeySpec>,
  others: Set<string>,
  file: string | null,
): void {
  for (const [k, v] of Object.entries(table)) {
    const spec = keys[k];
    if (spec) applyKey(config, `${prefix}.${k}`, spec, v, file);
    else if (!others.has(k)) config.warnings.push(`unknown key ${prefix}.${k}${file ? ` in ${file}` : ''} (ignored)`);
  }
}

/** Parses configuration.toml text over the defaults; `file` names it in messages. */
export function parseConfig(text: string, file: string | null, arch: GuestArch = 'x86_64'): RuntimeConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new OsbuilderError(
        'CONFIG_INVALID',
        `${file ?? 'configuration'} is not valid TOML: ${first} (line ${err.line}, column ${err.column})\n${err.codeblock.trimEnd()}`,
        'fix the syntax; see the example configuration.toml in the README',
      );
    }
    throw err;
  }
  // Image and initrd in the defaults are only defaults: a file sets its own.
  const config = defaultConfig(arch);
  config.source = file;
  const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
  for (const [top, value] of Object.entries(doc)) {
    if (top === 'hypervisor' && isTable(value)) {
      for (const [name, hv] of Object.entries(value)) {
        if (name === 'qemu' && isTable(hv)) {
          if ('image' in hv || 'initrd' in hv) {
            config.hypervisor.image = null;
            config.hypervisor.initrd = null;
          }
          applyTable(config, 'hypervisor.qemu', hv, QEMU_KEYS, KATA_QEMU_OTHER, file);
        } else config.warnings.push(`[hypervisor.${name}] is ignored: osbuilder boots with QEMU ([hypervisor.qemu])`);
      }
    } else if (top === 'agent' && isTable(value)) {
      for (const [name, ag] of Object.entries(value)) {
        if (name === 'kata' && isTable(ag)) applyTable(config, 'agent.kata', ag, AGENT_KEYS, KATA_AGENT_OTHER, file);
        else config.warnings.push(`[agent.${name}] is ignored: only [agent.kata] is read`);
      }
    } else if (!KATA_OTHER_TABLES.has(top)) {
      config.warnings.push(`unknown ${isTable(value) ? 'table' : 'key'} ${top}${file ? ` in ${file}` : ''} (ignored)`);
    }
  }
  config.warnings.push(...rootPortWarnings(config.hypervisor));
  if (config.hypervisor.image && config.hypervisor.initrd) {
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `hypervisor.qemu.image and hypervisor.qemu.initrd are both set${file ? ` in ${file}` : ''}: cannot boot from an image and an initrd at once`,
      'keep one of them (Kata refuses this configuration too)',
    );
  }
  return config;
}

/** How many pcie-root-port devices the VM gets: Kata adds them for root-port hotplug on q35 only. */
export function rootPortCount(hv: Pick<HypervisorConfig, 'pcieRootPort' | 'hotplugVfioOnRootBus' | 'hotPlugVfio' | 'machineType'>): number {
  const onRootPort = hv.hotplugVfioOnRootBus || hv.hotPlugVfio === 'root-port';
  return onRootPort && hv.machineType === 'q35' ? hv.pcieRootPort : 0;
}

function rootPortWarnings(hv: HypervisorConfig): string[] {
  if (hv.pcieRootPort === 0 || rootPortCount(hv) > 0) return [];
  if (hv.machineType !== 'q35') return [`pcie_root_port = ${hv.pcieRootPort} is ignored: root ports exist on q35 only (machine_type = "${hv.machineType}")`];
  return [`pcie_root_port = ${hv.pcieRootPort} is ignored without hotplug_vfio_on_root_bus = true or hot_plug_vfio = "root-port", as in Kata`];
}

/** Reads a configuration file; a missing file is an error naming it. */
export async function loadConfig(file: string, arch: GuestArch = 'x86_64'): Promise<RuntimeConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new OsbuilderError('INPUT_NOT_FOUND', `configuration file ${file} does not exist`, 'give an existing configuration.toml with --config');
    throw new OsbuilderError('CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`, 'check the file and its permissions');
  }
  return parseConfig(text, file, arch);
}

/** The guest arch a configuration's QEMU is for: qemu-system-aarch64 → aarch64, qemu-system-x86_64 → x86_64. */
export function qemuGuestArch(qemuPath: string): GuestArch | undefined {
  const m = /(?:^|\/)qemu-system-(x86_64|aarch64)$/.exec(qemuPath);
  return m ? (m[1] as GuestArch) : undefined;
}

/** The guest arch a configuration file names through hypervisor.qemu.path; undefined when it names none (or cannot be read: loadConfig says why). */
export async function configFileArch(file: string): Promise<GuestArch | undefined> {
  try {
    const doc = parse(await readFile(file, 'utf8')) as { hypervisor?: { qemu?: { path?: unknown } } };
    const path = doc.hypervisor?.qemu?.path;
    return typeof path === 'string' ? qemuGuestArch(path) : undefined;
  } catch {
    return undefined;
  }
}

/** --config, else $KATA_CONF_FILE, else Kata's default locations, else built-in defaults. */
export async function findConfig(explicit: string | undefined, env: NodeJS.ProcessEnv, exists: (p: string) => Promise<boolean>): Promise<string | null> {
  if (explicit) return explicit;
  if (env.KATA_CONF_FILE) return env.KATA_CONF_FILE;
  for (const p of DEFAULT_CONFIG_PATHS) if (await exists(p)) return p;
  return null;
}

/** Command-line settings that override the file (Kata's CLI has none; ours do). */
export interface ConfigOverrides {
  qemu?: string;
  kernel?: string;
  image?: string;
  initrd?: string;
  kernelParams?: string;
  kernelVerityParams?: string;
  vcpus?: number;
  memory?: number;
  machineType?: string;
  disableImageNvdimm?: boolean;
  /** hypervisor.qemu.firmware ('' = none). */
  firmware?: string;
  /** pcie_root_port = N, plugged into by root-port hotplug (hot_plug_vfio = "root-port"). */
  pcieRootPort?: number;
  /** Appended to kernel_modules, each "name param=value …". */
  kernelModules?: string[];
  debug?: boolean;
}

export function applyOverrides(base: RuntimeConfig, o: ConfigOverrides): RuntimeConfig {
  const c: RuntimeConfig = { ...base, hypervisor: { ...base.hypervisor }, agent: { ...base.agent }, warnings: [...base.warnings] };
  if (o.image !== undefined && o.initrd !== undefined) {
    throw new OsbuilderError('USAGE', '--image and --initrd are both given: cannot boot from an image and an initrd at once', 'give one of them');
  }
  const flag = (key: string, spec: KeySpec, v: unknown) => applyKey(c, `--${key}`, spec, v, null);
  if (o.qemu !== undefined) flag('qemu', QEMU_KEYS.path!, o.qemu);
  if (o.kernel !== undefined) flag('kernel', QEMU_KEYS.kernel!, o.kernel);
  if (o.image !== undefined) {
    c.hypervisor.image = o.image;
    c.hypervisor.initrd = null;
  }
  if (o.initrd !== undefined) {
    c.hypervisor.initrd = o.initrd;
    c.hypervisor.image = null;
  }
  if (o.kernelParams !== undefined) c.hypervisor.kernelParams = [c.hypervisor.kernelParams, o.kernelParams].filter(Boolean).join(' ');
  if (o.kernelVerityParams !== undefined) flag('kernel-verity-params', QEMU_KEYS.kernel_verity_params!, o.kernelVerityParams);
  if (o.vcpus !== undefined) flag('vcpus', QEMU_KEYS.default_vcpus!, o.vcpus);
  if (o.memory !== undefined) flag('memory', QEMU_KEYS.default_memory!, o.memory);
  if (o.machineType !== undefined) flag('machine-type', QEMU_KEYS.machine_type!, o.machineType);
  if (o.disableImageNvdimm !== undefined) c.hypervisor.disableImageNvdimm = o.disableImageNvdimm;
  if (o.firmware !== undefined) flag('firmware', QEMU_KEYS.firmware!, o.firmware);
  if (o.pcieRootPort !== undefined) {
    flag('pcie-root-port', QEMU_KEYS.pcie_root_port!, o.pcieRootPort);
    c.hypervisor.hotPlugVfio = 'root-port';
    c.warnings = c.warnings.filter((w) => !w.startsWith('pcie_root_port = '));
    c.warnings.push(...rootPortWarnings(c.hypervisor));
  }
  if (o.kernelModules?.length) c.agent.kernelModules = [...c.agent.kernelModules, ...parseKernelModules(o.kernelModules, '--kernel-module')];
  if (o.debug) {
    c.hypervisor.enableDebug = true;
    c.agent.enableDebug = true;
  }
  return c;
}
