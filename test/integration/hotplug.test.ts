/**
 * PCIe hotplug the way GPU passthrough uses it, with QEMU standing in for the
 * GPU (TCG, no GPU here): the nvidia kernel, and the default one (it has
 * pciehp and 64-bit MMIO too), boots with two pcie-root-ports; an ivshmem-plain
 * device whose 4 GiB memory backend is its 64-bit prefetchable BAR (a GPU's
 * large BAR) and a plain virtio-rng-pci are hot-added over QMP. Containers
 * that bind the guest's /sys see both (the large-BAR one through the GPU boot
 * test's own hotplugCheck: BAR above 4 GiB at full size, gone after a
 * hot-remove), and pciehp reports both slots on the console. Through the CLI the same
 * hot-add works with --hot-add, and with no root port it is refused before
 * any VM starts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { guestKernel, type GuestKernel } from '../support/kernel.js';
import { agentInitrd, bootJson, vmNamer } from '../support/boot.js';
import type { CliErrorJson } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { nothingLeft } from '../support/vm-left.js';
import { boot, parseDeviceSpec, type BootSession } from '../../runtime/index.js';
import { GUEST_PCI_LIST, guestShell, hotplugCheck, parseGuestPci, type GuestPciDevice } from '../../pipeline/gpu-checks.js';

const GiB = 2 ** 30;
let dir: string;
let kernel: GuestKernel;
let initrd: string;
const vmName = vmNamer('osb-hotplug');

beforeAll(async () => {
  dir = await makeTempDir('osb-hotplug-');
  kernel = await guestKernel();
  initrd = await agentInitrd(dir, 'agent');
});

/** The guest's PCI devices, listed in a container that sees the guest's /sys. */
async function guestPci(s: BootSession, n: number): Promise<GuestPciDevice[]> {
  return parseGuestPci(await guestShell(s, `pci-${n}`, GUEST_PCI_LIST));
}

const isIvshmem = (d: GuestPciDevice) => d.vendor === '0x1af4' && d.device === '0x1110';
const isRng = (d: GuestPciDevice) => d.vendor === '0x1af4' && d.device === '0x1044';

describe('PCIe hotplug into root ports', () => {
  it.each(['nvidia', 'default'] as const)(
    '%s kernel: a 4 GiB 64-bit BAR device and a plain one come up through pciehp, the BAR above 4 GiB at full size; hot-removed, it is gone',
    async (variant) => {
      const k = await guestKernel(variant);
      const name = vmName();
      const consoleLog = join(dir, `hotplug-console-${variant}.log`);
      const r = await boot({
        name,
        // loglevel=7: pciehp reports at KERN_INFO, which Kata's `quiet` hides.
        overrides: { kernel: k.bzImage, initrd, memory: 512, pcieRootPort: 2, kernelParams: 'loglevel=7' },
        timeoutSec: 300,
        consoleLog,
        session: async (s) => {
          const before = await guestPci(s, 1);
          const plainPort = await s.hotplug.add(parseDeviceSpec('virtio-rng-pci,id=plain0', 'x'));
          // The GPU boot test's own check: the large-BAR device up through pciehp, then hot-removed.
          const gpu = await hotplugCheck(s);
          let after = await guestPci(s, 2);
          for (let i = 3; i < 40 && !after.some(isRng); i++) after = await guestPci(s, i);
          return { before, gpu, after, plainPort };
        },
      });
      await nothingLeft(name);
      const { before, gpu, after, plainPort } = r.session!;
      expect(before.some(isIvshmem) || before.some(isRng)).toBe(false);
      expect(plainPort).toBe('rp0');
      expect(gpu).toMatchObject({ port: 'rp1', barBytes: 4 * GiB, removed: true });
      expect(Number(gpu.barStart)).toBeGreaterThanOrEqual(4 * GiB);
      expect(after.some(isRng)).toBe(true);
      expect(after.some(isIvshmem)).toBe(false);
      expect(r.hotplugged).toEqual([{ id: 'plain0', port: 'rp0' }]);
      const con = await readFile(consoleLog, 'utf8');
      expect(con).toMatch(/pciehp: Slot\(0\): Link Up/);
      expect(con).toMatch(/pciehp: Slot\(1\): Link Up/);
      expect(r.qemu.argv).toEqual(
        expect.arrayContaining([
          'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off',
          'pcie-root-port,id=rp1,bus=pcie.0,chassis=0,slot=1,multifunction=off,pref64-reserve=16G',
        ]),
      );
    },
  );

  // QEMU answers device_add before the guest's pciehp has brought the slot up: the command waits for it (bounded).
  const WAIT_RNG =
    'for i in $(seq 240); do grep -qx 0x1044 /guest/sys/bus/pci/devices/*/device && break; sleep 0.25; done; cat /guest/sys/bus/pci/devices/*/device';

  it('osbuilder boot --hot-add: the device is plugged once the sandbox is up, and the command sees it arrive', async () => {
    const name = vmName();
    const r = await bootJson(
      name,
      kernel.bzImage,
      ['--initrd', initrd, '--pcie-root-port', '1', '--hot-add', 'virtio-rng-pci,id=rng7', '--guest-mount', '/sys:/guest/sys'],
      ['sh', '-c', WAIT_RNG],
    );
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.json!.hotplugged).toEqual([{ id: 'rng7', port: 'rp0' }]);
    expect(r.json!.container!.stdout!.split('\n')).toContain('0x1044');
  });

  it('hot-adding with no root port is refused before any VM starts, naming the fix', async () => {
    const name = vmName();
    const r = await bootJson<CliErrorJson>(name, kernel.bzImage, ['--initrd', initrd, '--hot-add', 'virtio-rng-pci'], ['true']);
    expect(r.exitCode).not.toBe(0);
    expect(r.json!.error).toMatchObject({
      code: 'CONFIG_INVALID',
      message: 'cannot hot-add hp0: the VM has no PCIe root port to plug it into',
      hint: expect.stringContaining('--pcie-root-port N'),
    });
  });
});
