/**
 * PCIe hotplug as kata-runtime does it for a GPU: pcie_root_port and its
 * keys in configuration.toml, the root ports on QEMU's command line, device
 * and object specs, and the QMP conversation (object-add, device_add on a free
 * port, device_del answered by DEVICE_DELETED) against a fake QMP monitor.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOverrides, defaultConfig, parseConfig, rootPortCount } from '../../runtime/config.js';
import { Hotplug, parseDeviceSpec, parseObjectSpec, splitKeyval } from '../../runtime/hotplug.js';
import { planQemu, rootPortArgs, type QemuPlanInput } from '../../runtime/qemu.js';
import { renderQemuConfig } from '../../pipeline/install.js';
import { thrown } from '../support/errors.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('pcie_root_port in configuration.toml', () => {
  const cfg = (lines: string) => parseConfig(`[hypervisor.qemu]\n${lines}\n`, 'c.toml');

  it('adds root ports with root-port hotplug on q35 (Kata 2.x hotplug_vfio_on_root_bus or 3.x hot_plug_vfio)', () => {
    expect(rootPortCount(cfg('pcie_root_port = 2\nhotplug_vfio_on_root_bus = true').hypervisor)).toBe(2);
    expect(rootPortCount(cfg('pcie_root_port = 3\nhot_plug_vfio = "root-port"').hypervisor)).toBe(3);
    expect(rootPortCount(defaultConfig().hypervisor)).toBe(0);
    expect(cfg('pcie_root_port = 2\nhotplug_vfio_on_root_bus = true').warnings).toEqual([]);
  });

  it('says when it is ignored, as Kata ignores it: without root-port hotplug, or off q35', () => {
    const off = cfg('pcie_root_port = 2');
    expect(rootPortCount(off.hypervisor)).toBe(0);
    expect(off.warnings).toEqual([
      expect.stringMatching(/^pcie_root_port = 2 is ignored without hotplug_vfio_on_root_bus = true or hot_plug_vfio = "root-port"/),
    ]);
    const pc = cfg('pcie_root_port = 1\nhot_plug_vfio = "root-port"\nmachine_type = "pc"');
    expect(rootPortCount(pc.hypervisor)).toBe(0);
    expect(pc.warnings).toEqual([expect.stringMatching(/root ports exist on q35 only/)]);
  });

  it.each([
    ['-1', /must be between 0 and 16, got -1/],
    ['17', /must be between 0 and 16, got 17/],
    ['"two"', /expected a whole number, got "two"/],
    ['1.5', /expected a whole number, got 1\.5/],
  ])('pcie_root_port = %s is a CONFIG_INVALID naming the key', (v, message) => {
    const e = thrown(() => cfg(`pcie_root_port = ${v}`));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/^hypervisor\.qemu\.pcie_root_port: /);
    expect(e.message).toMatch(message);
    expect(thrown(() => cfg('hot_plug_vfio = "somewhere"')).message).toMatch(/must be one of no-port, bridge-port, root-port, switch-port/);
  });

  it('--pcie-root-port N sets root-port hotplug with N ports; a bad N names the flag', () => {
    const c = applyOverrides(defaultConfig(), { pcieRootPort: 2 });
    expect(rootPortCount(c.hypervisor)).toBe(2);
    expect(c.warnings).toEqual([]);
    expect(thrown(() => applyOverrides(defaultConfig(), { pcieRootPort: -1 })).message).toMatch(/^--pcie-root-port: must be between 0 and 16, got -1/);
  });

  it("the installed GPU configuration asks for one root port as Kata's GPU passthrough guide does", () => {
    const text = renderQemuConfig({ qemuPath: 'q', machineType: 'q35', kernel: 'k', image: '/i', gpu: true, toolVersion: '1' });
    const c = parseConfig(text, 'configuration-qemu-nvidia-gpu.toml');
    expect(c.warnings).toEqual([]);
    expect(c.hypervisor).toMatchObject({ machineType: 'q35', pcieRootPort: 1, hotplugVfioOnRootBus: true, hotPlugVfio: 'root-port' });
    expect(
      rootPortCount(parseConfig(renderQemuConfig({ qemuPath: 'q', machineType: 'q35', kernel: 'k', image: '/i', toolVersion: '1' }), 'x').hypervisor),
    ).toBe(0);
  });
});

describe('root ports on the QEMU command line', () => {
  const input: QemuPlanInput = {
    arch: 'x86_64',
    qemu: 'qemu-system-x86_64',
    machineType: 'q35',
    accel: 'tcg',
    kernel: '/k',
    root: { kind: 'initrd', path: '/i' },
    vcpus: 1,
    memoryMiB: 512,
    channel: { kind: 'serial', socket: '/s' },
    qmpSocket: '/q',
    console: 'hvc',
    entropySource: '/dev/urandom',
    name: 'vm',
    debug: false,
    agentDebug: false,
  };

  it("rp<i> on pcie.0 as Kata lays them out, each reserving a 64-bit window; pciehp instead of q35's ACPI hotplug", () => {
    expect(rootPortArgs(2)).toEqual([
      '-global',
      'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off',
      '-device',
      'pcie-root-port,id=rp0,bus=pcie.0,chassis=0,slot=0,multifunction=off,pref64-reserve=16G',
      '-device',
      'pcie-root-port,id=rp1,bus=pcie.0,chassis=0,slot=1,multifunction=off,pref64-reserve=16G',
    ]);
    expect(rootPortArgs(0)).toEqual([]);
    const args = planQemu({ ...input, rootPorts: 1 }).args;
    expect(args.join(' ')).toContain('-device pcie-root-port,id=rp0,bus=pcie.0');
    expect(planQemu(input).args.join(' ')).not.toContain('pcie-root-port');
    expect(thrown(() => planQemu({ ...input, machineType: 'pc', rootPorts: 1 })).code).toBe('CONFIG_INVALID');
  });
});

describe('device and object specs (QEMU syntax)', () => {
  it('parses -device and -object forms, doubled commas included; QMP gets typed object properties', () => {
    expect(splitKeyval('a,b=c,,d,e=f')).toEqual(['a', 'b=c,d', 'e=f']);
    expect(parseDeviceSpec('ivshmem-plain,id=gpu0,memdev=m0', 'hp0')).toEqual({ driver: 'ivshmem-plain', id: 'gpu0', props: { memdev: 'm0' } });
    expect(parseDeviceSpec('virtio-rng-pci', 'hp3')).toEqual({ driver: 'virtio-rng-pci', id: 'hp3', props: {} });
    expect(parseObjectSpec('memory-backend-ram,id=m0,size=4G,share=on')).toEqual({
      qomType: 'memory-backend-ram',
      id: 'm0',
      props: { size: 4 * 2 ** 30, share: true },
    });
    expect(parseObjectSpec('memory-backend-file,id=m1,mem-path=/dev/shm/x,size=512M').props).toEqual({ 'mem-path': '/dev/shm/x', size: 512 * 2 ** 20 });
  });

  it.each([
    [() => parseDeviceSpec('id=x', 'hp0'), /expected the device driver first/],
    [() => parseDeviceSpec('virtio-rng-pci,oops', 'hp0'), /"oops" is not key=value/],
    [() => parseDeviceSpec('virtio-rng-pci,bus=pcie.0', 'hp0'), /bus= is chosen by osbuilder/],
    [() => parseObjectSpec('memory-backend-ram,size=1G'), /an id= is required/],
  ])('bad specs are USAGE errors with an example (%#)', (fn, message) => {
    const e = thrown(fn);
    expect(e.code).toBe('USAGE');
    expect(e.message).toMatch(message);
    expect(e.hint).toMatch(/^e\.g\. --hot-add/);
  });
});

/** A QMP monitor: greets, answers every command, and sends DEVICE_DELETED a little after device_del. */
async function fakeQmp(): Promise<{ socket: string; commands: Array<{ execute: string; arguments?: Record<string, unknown> }> }> {
  const dir = await mkdtemp(join(tmpdir(), 'osb-qmp-'));
  const socket = join(dir, 'qmp.sock');
  const commands: Array<{ execute: string; arguments?: Record<string, unknown> }> = [];
  const server: Server = createServer((s: Socket) => {
    s.write('{"QMP": {"version": {}, "capabilities": []}}\n');
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; arguments?: Record<string, unknown> };
        buf = buf.slice(nl + 1);
        commands.push(cmd);
        if (cmd.execute === 'device_add' && cmd.arguments?.driver === 'nonexistent') {
          s.write('{"error": {"class": "GenericError", "desc": "\'nonexistent\' is not a valid device model name"}}\n');
          continue;
        }
        s.write('{"return": {}}\n');
        if (cmd.execute === 'device_del') {
          setTimeout(
            () =>
              s.write(
                `{"event": "DEVICE_DELETED", "data": {"device": "other"}}\n{"event": "DEVICE_DELETED", "data": {"device": "${String(cmd.arguments?.id)}", "path": "/machine/peripheral/x"}}\n`,
              ),
            50,
          );
        }
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(socket, () => r()));
  cleanups.push(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });
  return { socket, commands };
}

describe('Hotplug over QMP', () => {
  it('object-add, then device_add on the first free root port; device_del done at DEVICE_DELETED', async () => {
    const q = await fakeQmp();
    const h = new Hotplug(q.socket, 2);
    await h.addObject(parseObjectSpec('memory-backend-ram,id=m0,size=4G'));
    expect(await h.add(parseDeviceSpec('ivshmem-plain,id=gpu0,memdev=m0', 'hp0'))).toBe('rp0');
    expect(await h.add(parseDeviceSpec('virtio-rng-pci', 'hp1'))).toBe('rp1');
    expect(h.devices).toEqual([
      { id: 'gpu0', port: 'rp0' },
      { id: 'hp1', port: 'rp1' },
    ]);
    // both ports taken
    await expect(h.add(parseDeviceSpec('virtio-rng-pci', 'hp2'))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/all 2 PCIe root ports hold a device/),
    });
    await h.remove('gpu0');
    await h.removeObject('m0');
    expect(h.devices).toEqual([{ id: 'hp1', port: 'rp1' }]);
    // the freed port is used again
    expect(await h.add(parseDeviceSpec('virtio-rng-pci', 'hp3'))).toBe('rp0');
    const sent = q.commands.filter((c) => c.execute !== 'qmp_capabilities');
    expect(sent.slice(0, 3)).toEqual([
      { execute: 'object-add', arguments: { 'qom-type': 'memory-backend-ram', id: 'm0', size: 4 * 2 ** 30 } },
      { execute: 'device_add', arguments: { driver: 'ivshmem-plain', id: 'gpu0', bus: 'rp0', memdev: 'm0' } },
      { execute: 'device_add', arguments: { driver: 'virtio-rng-pci', id: 'hp1', bus: 'rp1' } },
    ]);
    expect(sent.map((c) => c.execute)).toEqual(['object-add', 'device_add', 'device_add', 'device_del', 'object-del', 'device_add']);
  });

  it("QEMU's refusal is QMP_FAILED with its words; no root port, or removing what was not added, is our clear error", async () => {
    const q = await fakeQmp();
    const h = new Hotplug(q.socket, 1);
    await expect(h.add(parseDeviceSpec('nonexistent', 'hp0'))).rejects.toMatchObject({
      code: 'QMP_FAILED',
      message: "QMP device_add: 'nonexistent' is not a valid device model name",
    });
    expect(h.devices).toEqual([]);
    await expect(new Hotplug(q.socket, 0).add(parseDeviceSpec('virtio-rng-pci', 'hp0'))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/has no PCIe root port/),
      hint: expect.stringMatching(/pcie_root_port = N/),
    });
    await expect(h.remove('gpu9')).rejects.toMatchObject({ code: 'USAGE', message: 'cannot remove gpu9: it was not hot-added here' });
  });
});
