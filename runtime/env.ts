/**
 * `osbuilder env`: the resolved configuration and the host, like kata-env:
 * sections Meta, Kernel, Image, Initrd, Hypervisor, Agent, Host.
 */
import { readFile, stat } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';
import { stringify } from 'smol-toml';
import { TOOL_VERSION } from '../core/version.js';
import { AGENT_SERIAL_NAME, AGENT_VSOCK_PORT } from '../agent/index.js';
import { rootPortCount, type RuntimeConfig } from './config.js';
import { checkHost, findQemu, type HostReport } from './host.js';
import { imageRootDevice, kernelParams, rootParams, type RootDevice } from './qemu.js';

export interface EnvReport {
  Meta: { Version: string; ConfigFile: string; Warnings: string[] };
  Kernel: { Path: string; Exists: boolean; Parameters: string };
  Image: { Path: string; Exists: boolean; Size: number; Nvdimm: boolean; RootParameters: string };
  Initrd: { Path: string; Exists: boolean };
  Hypervisor: {
    Path: string;
    Version: string;
    MachineType: string;
    Accelerator: string;
    AcceleratorReason: string;
    DefaultVCPUs: number;
    DefaultMemory: number;
    BlockDeviceDriver: string;
    DisableImageNvdimm: boolean;
    RootfsType: string;
    KernelVerityParams: string;
    /** Root ports the VM gets (0 unless root-port hotplug on q35). */
    PCIeRootPort: number;
    EntropySource: string;
    Debug: boolean;
  };
  Agent: { Debug: boolean; DialTimeout: number; Channel: string; VsockPort: number; SerialPort: string };
  Host: {
    Kernel: string;
    Architecture: string;
    VMContainerCapable: boolean;
    SupportVSocks: boolean;
    CPU: { Vendor: string; Model: string; CPUs: number; Virtualization: string };
    Memory: { Total: number; Free: number };
    Distro: { Name: string; Version: string };
    KVM: { Device: boolean; Usable: boolean; Probe: string };
  };
}

async function fileInfo(path: string | null): Promise<{ exists: boolean; size: number }> {
  if (!path) return { exists: false, size: 0 };
  const st = await stat(path).catch(() => undefined);
  return { exists: !!st?.isFile(), size: st?.size ?? 0 };
}

/** The Host section: the host report, this machine's CPUs and memory, its distro. */
function hostSection(host: HostReport, distro: { name: string; version: string }): EnvReport['Host'] {
  return {
    Kernel: host.kernel,
    Architecture: host.arch,
    VMContainerCapable: host.kvm.usable,
    SupportVSocks: host.vhostVsock.accessible,
    CPU: { Vendor: host.cpu.vendor, Model: host.cpu.model, CPUs: cpus().length, Virtualization: host.cpu.virtualization ?? '' },
    Memory: { Total: Math.round(totalmem() / 1024), Free: Math.round(freemem() / 1024) },
    Distro: { Name: distro.name, Version: distro.version },
    KVM: { Device: host.kvm.device, Usable: host.kvm.usable, Probe: host.kvm.probe?.detail ?? '' },
  };
}

/** Pure: the env report from a config and a host report. */
export function envReport(
  config: RuntimeConfig,
  host: HostReport,
  files: { kernel: boolean; image: { exists: boolean; size: number }; initrd: boolean },
  distro: { name: string; version: string },
  qemuVersion: string | null,
): EnvReport {
  const hv = config.hypervisor;
  const root: RootDevice = hv.image ? imageRootDevice(hv, hv.image, files.image.size) : { kind: 'initrd', path: hv.initrd ?? '' };
  const params = kernelParams({
    arch: config.arch,
    root,
    console: 'hvc',
    debug: hv.enableDebug,
    agentDebug: config.agent.enableDebug,
    extraKernelParams: hv.kernelParams,
  });
  return {
    Meta: { Version: TOOL_VERSION, ConfigFile: config.source ?? '', Warnings: config.warnings },
    Kernel: { Path: hv.kernel, Exists: files.kernel, Parameters: params.join(' ') },
    Image: {
      Path: hv.image ?? '',
      Exists: files.image.exists,
      Size: files.image.size,
      Nvdimm: !!hv.image && !hv.disableImageNvdimm,
      RootParameters: rootParams(root).join(' '),
    },
    Initrd: { Path: hv.initrd ?? '', Exists: files.initrd },
    Hypervisor: {
      Path: host.qemu.path ?? hv.path,
      Version: qemuVersion ?? '',
      MachineType: hv.machineType,
      Accelerator: host.accel.auto,
      AcceleratorReason: host.accel.reason,
      DefaultVCPUs: hv.defaultVcpus,
      DefaultMemory: hv.defaultMemory,
      BlockDeviceDriver: hv.blockDeviceDriver,
      DisableImageNvdimm: hv.disableImageNvdimm,
      RootfsType: hv.rootfsType,
      KernelVerityParams: hv.kernelVerityParams,
      PCIeRootPort: rootPortCount(hv),
      EntropySource: hv.entropySource,
      Debug: hv.enableDebug,
    },
    Agent: {
      Debug: config.agent.enableDebug,
      DialTimeout: config.agent.dialTimeout,
      Channel: host.agentChannel.auto,
      VsockPort: AGENT_VSOCK_PORT,
      SerialPort: AGENT_SERIAL_NAME,
    },
    Host: hostSection(host, distro),
  };
}

export async function hostDistro(): Promise<{ name: string; version: string }> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const get = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1] ?? '';
  return { name: get('NAME'), version: get('VERSION_ID') };
}

export async function collectEnv(config: RuntimeConfig, opts: { fresh?: boolean } = {}): Promise<EnvReport> {
  const qemu = await findQemu(config.hypervisor.path);
  const host = await checkHost({ qemu: config.hypervisor.path, ...(opts.fresh ? { fresh: true } : {}) });
  const files = {
    kernel: (await fileInfo(config.hypervisor.kernel)).exists,
    image: await fileInfo(config.hypervisor.image),
    initrd: (await fileInfo(config.hypervisor.initrd)).exists,
  };
  return envReport(config, host, files, await hostDistro(), qemu.version);
}

/** TOML rendering (kata-env's default format). */
export function envToml(report: EnvReport): string {
  return stringify(report as unknown as Record<string, unknown>);
}
