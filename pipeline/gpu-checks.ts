/**
 * What the GPU kernel exists for, proven in its boot test through Kata's agent
 * API (containers that bind the guest's /sys): a device with a 4 GiB 64-bit
 * prefetchable BAR (ivshmem-plain over a RAM backend, standing in for a GPU)
 * hot-plugged into the PCIe root port comes up through pciehp with the BAR
 * assigned above 4 GiB at full size, and is gone after a hot-remove; and the
 * out-of-tree probe module (gpu-probe.ts), when the boot carries it, was
 * loaded at CreateSandbox with its parameter.
 */
import { OsbuilderError } from '../core/errors.js';
import { bindMount, defaultContainerRootfs, defaultSpec, parseDeviceSpec, parseObjectSpec, setRoot, type BootSession } from '../runtime/index.js';
import { PROBE_MODULE } from './gpu-probe.js';

const GiB = 2 ** 30;
/** The stand-in GPU: Red Hat's ivshmem (1af4:1110), its BAR 2 the memory backend. */
const GPU = { vendor: '0x1af4', device: '0x1110', barBytes: 4 * GiB };

/** Each PCI device of the guest: "address vendor device", then its assigned resources ("  start end flags"). */
export const GUEST_PCI_LIST =
  'for d in /guest/sys/bus/pci/devices/*; do echo "$(basename $d) $(cat $d/vendor) $(cat $d/device)"; grep -v "^0x0000000000000000 0x0000000000000000" $d/resource | sed "s/^/  /"; done';

export interface GuestPciDevice {
  address: string;
  vendor: string;
  device: string;
  resources: Array<{ start: number; end: number }>;
}

export function parseGuestPci(text: string): GuestPciDevice[] {
  const out: GuestPciDevice[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    if (line.startsWith('  ') && out.length) {
      const [start, end] = line.trim().split(' ');
      out.at(-1)!.resources.push({ start: Number(start), end: Number(end) }); // exact below 2^53
    } else if (!line.startsWith(' ')) {
      const [address, vendor, device] = line.split(' ');
      out.push({ address: address!, vendor: vendor!, device: device!, resources: [] });
    }
  }
  return out;
}

export interface GpuChecks {
  /** The large-BAR device's hotplug, or why it was not tried (root ports are q35's). */
  hotplug: { port: string; address: string; barStart: string; barBytes: number; removed: boolean } | { skipped: string };
  /** The probe module as the guest reports it, or why it was not part of this boot. */
  module: { name: string; token: string } | { skipped: string };
}

function fail(what: string): never {
  throw new OsbuilderError('BOOT_FAILED', `GPU boot test: ${what}`, 'see the guest console log (osbuilder boot --console-log)');
}

/** Runs `script` in a container that sees the guest's /sys at /guest/sys; its stdout. */
export async function guestShell(s: BootSession, id: string, script: string): Promise<string> {
  const spec = defaultSpec({ args: ['sh', '-c', script], hostname: s.hostname });
  setRoot(spec, (await defaultContainerRootfs({ arch: s.arch })).path, true);
  spec.Mounts.push(bindMount('/sys', '/guest/sys', true));
  const c = await s.sandbox.createContainer(id, { spec, readonlyRootfs: true, guestSources: new Set(['/sys']) });
  const out: Uint8Array[] = [];
  try {
    await c.start();
    const status = await c.init.run({ onStdout: (b) => out.push(b) });
    if (status !== 0) fail(`\`${script.slice(0, 60)}…\` exited ${status} in the guest`);
  } finally {
    await c.remove().catch(() => undefined);
  }
  return Buffer.concat(out).toString('utf8');
}

const isGpu = (d: GuestPciDevice) => d.vendor === GPU.vendor && d.device === GPU.device;

/** The large-BAR device hot-added, seen with its BAR above 4 GiB at full size, hot-removed and gone; a BOOT_FAILED error otherwise. */
export async function hotplugCheck(s: BootSession): Promise<Exclude<GpuChecks['hotplug'], { skipped: string }>> {
  await s.hotplug.addObject(parseObjectSpec(`memory-backend-ram,id=osb-gpu-bar,size=${GPU.barBytes}`));
  const port = await s.hotplug.add(parseDeviceSpec('ivshmem-plain,id=osb-gpu0,memdev=osb-gpu-bar', 'osb-gpu0'));
  // pciehp brings the slot up after its link: list until the device is there (bounded).
  let gpu: GuestPciDevice | undefined;
  for (let i = 0; i < 40 && !gpu; i++) gpu = parseGuestPci(await guestShell(s, `osb-gpu-pci-${i}`, GUEST_PCI_LIST)).find(isGpu);
  if (!gpu) fail(`the hot-plugged ${GPU.vendor}:${GPU.device} device never appeared in the guest (pciehp)`);
  const bar = gpu.resources.find((r) => r.end - r.start + 1 === GPU.barBytes);
  if (!bar) fail(`${gpu.address} has no ${GPU.barBytes / GiB} GiB BAR assigned: ${JSON.stringify(gpu.resources)}`);
  if (bar.start < 4 * GiB) fail(`${gpu.address}'s 64-bit BAR is at 0x${bar.start.toString(16)}, below 4 GiB`);
  await s.hotplug.remove('osb-gpu0');
  await s.hotplug.removeObject('osb-gpu-bar');
  const after = parseGuestPci(await guestShell(s, 'osb-gpu-pci-removed', GUEST_PCI_LIST));
  if (after.some(isGpu)) fail(`${gpu.address} is still listed after the hot-remove`);
  return { port, address: gpu.address, barStart: `0x${bar.start.toString(16)}`, barBytes: GPU.barBytes, removed: true };
}

async function moduleCheck(s: BootSession, token: string): Promise<GpuChecks['module']> {
  const dir = `/guest/sys/module/${PROBE_MODULE}`;
  const out = (await guestShell(s, 'osb-gpu-module', `cat ${dir}/initstate ${dir}/parameters/token`)).split('\n');
  if (out[0] !== 'live') fail(`${PROBE_MODULE} is not live in the guest (initstate ${JSON.stringify(out[0])})`);
  if (out[1] !== token) fail(`${PROBE_MODULE}'s token is ${JSON.stringify(out[1])}, expected ${JSON.stringify(token)}`);
  return { name: PROBE_MODULE, token };
}

/** The GPU checks; `module` names the probe's token when the boot carries the module, or why it does not. */
export async function runGpuChecks(s: BootSession, module: { token: string } | { skipped: string }): Promise<GpuChecks> {
  const loaded = 'token' in module ? await moduleCheck(s, module.token) : module;
  const hotplug = s.arch === 'x86_64' ? await hotplugCheck(s) : { skipped: `PCIe root ports are q35's (x86_64); this guest is ${s.arch}` };
  return { hotplug, module: loaded };
}
