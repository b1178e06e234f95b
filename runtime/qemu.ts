/**
 * The QEMU command line, planned as plain data the way Kata's virtcontainers
 * builds it (qemu.go, qemu_amd64.go, qemu_arm64.go): machine with nvdimm, the
 * image as a read-only memory-backend-file behind -device nvdimm (or, with
 * disable_image_nvdimm, a read-only virtio-blk disk whatever
 * block_device_driver says, as Kata's appendBlockImage), an initrd via
 * -initrd, Kata's kernel parameters, the agent channel (virtio-serial port
 * agent.channel.0 on a host unix socket, or vhost-vsock), the sandbox's shared
 * directory over virtio-9p (tag kataShared), QMP, virtio-rng and a console.
 */
import { OsbuilderError } from '../core/errors.js';
import { parseVerityParams, verityRootParams, type VerityParams } from '../core/verity-params.js';
import { MiB, type FsType } from '../core/vocab.js';
import type { GuestArch, HypervisorConfig } from './config.js';

export type Accel = 'kvm' | 'tcg';

export type RootDevice =
  | { kind: 'image'; path: string; sizeBytes: number; nvdimm: boolean; rootfsType: FsType; verity?: VerityParams }
  | { kind: 'initrd'; path: string };

export type AgentChannel = { kind: 'serial'; socket: string } | { kind: 'vsock'; cid: number };

export interface QemuPlanInput {
  arch: GuestArch;
  qemu: string;
  machineType: string;
  accel: Accel;
  kernel: string;
  root: RootDevice;
  vcpus: number;
  memoryMiB: number;
  /** Extra parameters (configuration kernel_params, --kernel-params), appended last. */
  extraKernelParams?: string;
  channel: AgentChannel;
  /** The sandbox's shared directory (shared_fs = "virtio-9p"), exported as kataShared. */
  sharedDir?: string;
  qmpSocket: string;
  /** pcie-root-port devices to hotplug into (Kata's pcie_root_port with root-port hotplug; q35). */
  rootPorts?: number;
  /** 'hvc': Kata's virtio console (console=hvc0); 'serial': the UART (ttyS0 / ttyAMA0), which also shows early boot. */
  console: 'hvc' | 'serial';
  entropySource: string;
  /** Firmware booted with -bios (Kata's firmware); none = QEMU's own. */
  firmware?: string;
  /** -name: also a marker to find the process. */
  name: string;
  debug: boolean;
  agentDebug: boolean;
}

export interface QemuPlan {
  cmd: string;
  args: string[];
  kernelParams: string[];
}

/** Kata's kernel parameters for every QEMU guest (qemu.go). */
export const KATA_COMMON_PARAMS = ['panic=1', 'iommu=off'];

/** Kata's x86_64 parameters (qemu_amd64.go); the console ones depend on the console chosen. */
export const KATA_AMD64_PARAMS = [
  'tsc=reliable',
  'no_timer_check',
  'rcupdate.rcu_expedited=1',
  'i8042.direct=1',
  'i8042.dumbkbd=1',
  'i8042.nopnp=1',
  'i8042.noaux=1',
  'noreplace-smp',
  'reboot=k',
  'cryptomgr.notests',
  'net.ifnames=0',
  'pci=lastbus=0',
];

/** Kata's arm64 parameters (qemu_arm64.go). */
export const KATA_ARM64_PARAMS = ['iommu.passthrough=0'];

/** systemd guests boot Kata's target and skip networkd (rootfs.sh / kata-containers.target). */
export const KATA_SYSTEMD_PARAMS = ['systemd.unit=kata-containers.target', 'systemd.mask=systemd-networkd.service', 'systemd.mask=systemd-networkd.socket'];

/** The image as the configuration attaches it: nvdimm unless disabled, verity-checked when kernel_verity_params is set. */
export function imageRootDevice(hv: HypervisorConfig, path: string, sizeBytes: number): RootDevice {
  const verity = parseVerityParams(hv.kernelVerityParams);
  return { kind: 'image', path, sizeBytes, nvdimm: !hv.disableImageNvdimm, rootfsType: hv.rootfsType, ...(verity ? { verity } : {}) };
}

/** root= and friends for an image (Kata's kernelRootParams: pmem0p1, else the virtio-blk vda1; dm-0 over both partitions with verity). */
export function rootParams(root: RootDevice): string[] {
  if (root.kind === 'initrd') return [];
  if (root.verity) return verityRootParams(root.verity, root.nvdimm, root.rootfsType);
  const device = root.nvdimm ? '/dev/pmem0p1' : '/dev/vda1';
  const flags: Record<FsType, string> = {
    ext4: root.nvdimm ? 'dax,data=ordered,errors=remount-ro' : 'data=ordered,errors=remount-ro',
    xfs: root.nvdimm ? 'dax' : '',
    erofs: root.nvdimm ? 'dax' : '',
  };
  const f = flags[root.rootfsType];
  return [`root=${device}`, ...(f ? [`rootflags=${f}`] : []), 'ro', `rootfstype=${root.rootfsType}`];
}

export function consoleParams(arch: GuestArch, console: 'hvc' | 'serial'): string[] {
  if (console === 'hvc') return ['console=hvc0', 'console=hvc1'];
  return [arch === 'aarch64' ? 'console=ttyAMA0' : 'console=ttyS0'];
}

export function kernelParams(input: Pick<QemuPlanInput, 'arch' | 'root' | 'console' | 'debug' | 'agentDebug' | 'extraKernelParams'>): string[] {
  const params = [
    ...rootParams(input.root),
    ...(input.arch === 'aarch64' ? KATA_ARM64_PARAMS : KATA_AMD64_PARAMS),
    ...consoleParams(input.arch, input.console),
    ...KATA_COMMON_PARAMS,
    ...(input.debug ? ['debug', 'systemd.show_status=true', 'systemd.log_level=debug'] : ['quiet', 'systemd.show_status=false']),
    ...KATA_SYSTEMD_PARAMS,
    ...(input.agentDebug ? ['agent.log=debug'] : []),
  ];
  const extra = (input.extraKernelParams ?? '').split(/\s+/).filter(Boolean);
  return [...params, ...extra];
}

/** Room each root port reserves for a hotplugged device's 64-bit prefetchable BARs (a Tesla P100's BAR is 16 GiB). */
export const ROOT_PORT_PREF64_RESERVE = '16G';
export const rootPortId = (i: number) => `rp${i}`;

/**
 * Root ports as Kata's genericAppendPCIeRootPort lays them out (rp<i> on
 * pcie.0, chassis 0, slot i), each reserving a 64-bit prefetchable window the
 * firmware places above 4 GiB, so a large BAR plugged later fits. q35's ACPI
 * hotplug is turned off for bridges: the guest's native pciehp drives the
 * ports, as GPU passthrough needs.
 */
export function rootPortArgs(count: number): string[] {
  if (count === 0) return [];
  const a = ['-global', 'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'];
  for (let i = 0; i < count; i++)
    a.push('-device', `pcie-root-port,id=${rootPortId(i)},bus=pcie.0,chassis=0,slot=${i},multifunction=off,pref64-reserve=${ROOT_PORT_PREF64_RESERVE}`);
  return a;
}

/** QEMU's option syntax doubles commas inside values. */
export function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

export function validateMachine(arch: GuestArch, machineType: string): void {
  const ok = arch === 'aarch64' ? ['virt'] : ['q35', 'pc'];
  if (!ok.includes(machineType)) {
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `machine type ${machineType} is not supported for ${arch}`,
      `use ${ok.join(' or ')} (hypervisor.qemu.machine_type)`,
    );
  }
}

/** -machine, -cpu, -m (with nvdimm slots and maxmem room) and -smp. */
function machineArgs(input: QemuPlanInput): string[] {
  const nvdimm = input.root.kind === 'image' && input.root.nvdimm;
  const machine = [input.machineType, `accel=${input.accel}`];
  if (input.arch === 'x86_64' && input.accel === 'kvm') machine.push('kernel_irqchip=on');
  if (input.arch === 'aarch64') machine.push('usb=off', `gic-version=${input.accel === 'kvm' ? 'host' : 'max'}`);
  if (nvdimm) machine.push('nvdimm=on');
  const a = ['-machine', machine.join(','), '-cpu', input.accel === 'kvm' ? 'host,pmu=off' : 'max'];
  // nvdimm is plugged as memory: it needs slots and maxmem room (Kata: memory_slots = 10).
  if (input.root.kind === 'image' && input.root.nvdimm) {
    const imageMiB = Math.ceil(input.root.sizeBytes / MiB);
    a.push('-m', `${input.memoryMiB}M,slots=10,maxmem=${input.memoryMiB + imageMiB + 1024}M`);
  } else {
    a.push('-m', `${input.memoryMiB}M`);
  }
  a.push('-smp', `${input.vcpus},cores=1,threads=1,sockets=${input.vcpus},maxcpus=${input.vcpus}`);
  return a;
}

/** The image: a read-only nvdimm memory backend, or a read-only virtio-blk disk (an initrd goes with -kernel). */
function imageArgs(root: RootDevice): string[] {
  if (root.kind !== 'image') return [];
  const img = qemuEscape(root.path);
  if (root.nvdimm)
    return ['-object', `memory-backend-file,id=mem0,mem-path=${img},size=${root.sizeBytes},readonly=on`, '-device', 'nvdimm,id=nv0,memdev=mem0,unarmed=on'];
  return ['-drive', `id=image,file=${img},format=raw,if=none,readonly=on,aio=threads`, '-device', 'virtio-blk-pci,disable-modern=false,drive=image,id=image0'];
}

/** The agent channel: virtio-serial port agent.channel.0 on a host socket, or vhost-vsock. */
function channelArgs(channel: AgentChannel): string[] {
  if (channel.kind === 'vsock') return ['-device', `vhost-vsock-pci,disable-modern=false,id=vsock-${channel.cid},guest-cid=${channel.cid}`];
  return [
    '-chardev',
    `socket,id=charch0,path=${qemuEscape(channel.socket)},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=charch0,id=channel0,name=agent.channel.0',
  ];
}

/** The shared directory, as kata-runtime's virtio-9p (qemu.go appendFSDevices). */
function sharedDirArgs(sharedDir: string | undefined): string[] {
  if (!sharedDir) return [];
  return [
    '-device',
    'virtio-9p-pci,disable-modern=false,fsdev=extra-9p-kataShared,mount_tag=kataShared',
    '-fsdev',
    `local,id=extra-9p-kataShared,path=${qemuEscape(sharedDir)},security_model=none,multidevs=remap`,
  ];
}

/** Root ports, which only q35 has. */
function checkedRootPortArgs(input: QemuPlanInput): string[] {
  if (!input.rootPorts) return [];
  if (input.machineType !== 'q35')
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `PCIe root ports need machine_type = "q35", not "${input.machineType}"`,
      'set machine_type = "q35", or pcie_root_port = 0',
    );
  return rootPortArgs(input.rootPorts);
}

/**
 * arm64's virt machine describes nvdimm only in ACPI (NFIT), which UEFI
 * firmware provides: a direct -kernel boot would find no /dev/pmem0.
 */
export function checkNvdimmFirmware(input: Pick<QemuPlanInput, 'arch' | 'root' | 'firmware'>): void {
  if (input.arch !== 'aarch64' || input.root.kind !== 'image' || !input.root.nvdimm || input.firmware) return;
  throw new OsbuilderError(
    'CONFIG_INVALID',
    'an aarch64 guest sees an nvdimm image only through UEFI firmware (ACPI NFIT), and no firmware is set',
    'set hypervisor.qemu.firmware = "/usr/share/AAVMF/AAVMF_CODE.fd" (Debian\'s qemu-efi-aarch64), or disable_image_nvdimm = true (virtio-blk)',
  );
}

/** Pure: the full QEMU argv. */
export function planQemu(input: QemuPlanInput): QemuPlan {
  validateMachine(input.arch, input.machineType);
  checkNvdimmFirmware(input);
  const a: string[] = ['-name', input.name, ...machineArgs(input)];
  if (input.firmware) a.push('-bios', input.firmware);
  a.push('-qmp', `unix:${qemuEscape(input.qmpSocket)},server=on,wait=off`);
  a.push('-no-user-config', '-nodefaults', '-display', 'none', '-no-reboot');
  if (input.arch === 'x86_64') a.push('-rtc', 'base=utc,driftfix=slew,clock=host');
  if (input.arch === 'x86_64' && input.accel === 'kvm') a.push('-global', 'kvm-pit.lost_tick_policy=discard');

  // Console: the guest's output comes out on QEMU's stdout (the runtime tees it to the log).
  a.push('-chardev', 'stdio,id=charconsole0,signal=off');
  a.push('-device', 'virtio-serial-pci,disable-modern=false,id=serial0');
  if (input.console === 'hvc') a.push('-device', 'virtconsole,chardev=charconsole0,id=console0');
  else a.push('-serial', 'chardev:charconsole0');

  a.push(...imageArgs(input.root), ...channelArgs(input.channel), ...sharedDirArgs(input.sharedDir), ...checkedRootPortArgs(input));

  // Entropy.
  a.push('-object', `rng-random,id=rng0,filename=${qemuEscape(input.entropySource)}`);
  a.push('-device', 'virtio-rng-pci,rng=rng0');

  const params = kernelParams(input);
  a.push('-kernel', input.kernel);
  if (input.root.kind === 'initrd') a.push('-initrd', input.root.path);
  a.push('-append', params.join(' '));
  return { cmd: input.qemu, args: a, kernelParams: params };
}
