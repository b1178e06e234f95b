/** configuration.toml: Kata's keys, defaults, validation naming the key, image+initrd, overrides. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOverrides, configFileArch, defaultConfig, findConfig, parseConfig, qemuGuestArch } from '../../runtime/config.js';
import type { OsbuilderError } from '../../core/errors.js';

function error(fn: () => unknown): OsbuilderError {
  try {
    fn();
  } catch (err) {
    return err as OsbuilderError;
  }
  throw new Error('expected an error');
}

const KATA_LIKE = `
# A trimmed Kata configuration-qemu.toml
[hypervisor.qemu]
shared_fs = "virtio-9p"
msize_9p = 16384
path = "/usr/bin/qemu-system-x86_64"
kernel = "/usr/share/kata-containers/vmlinux.container"
image = "/usr/share/kata-containers/kata-containers.img"
machine_type = "q35"
kernel_params = "agent.log=debug"
firmware = ""
machine_accelerators = ""
cpu_features = "pmu=off"
default_vcpus = 2
default_maxvcpus = 0
default_memory = 1024
memory_slots = 10
block_device_driver = "virtio-scsi"
disable_image_nvdimm = true
entropy_source = "/dev/urandom"
enable_debug = true
valid_hypervisor_paths = ["/usr/bin/qemu-system-x86_64"]

[factory]
enable_template = false

[agent.kata]
enable_debug = true
dial_timeout = 30
kernel_modules = []

[runtime]
enable_debug = false
internetworking_model = "tcfilter"
`;

describe('configuration.toml', () => {
  it('reads the keys that matter and accepts the rest of a Kata file quietly', () => {
    const c = parseConfig(KATA_LIKE, '/etc/kata-containers/configuration.toml');
    expect(c.source).toBe('/etc/kata-containers/configuration.toml');
    expect(c.hypervisor).toEqual({
      path: '/usr/bin/qemu-system-x86_64',
      kernel: '/usr/share/kata-containers/vmlinux.container',
      image: '/usr/share/kata-containers/kata-containers.img',
      initrd: null,
      machineType: 'q35',
      kernelParams: 'agent.log=debug',
      defaultVcpus: 2,
      defaultMemory: 1024,
      blockDeviceDriver: 'virtio-scsi',
      disableImageNvdimm: true,
      rootfsType: 'ext4',
      kernelVerityParams: '',
      entropySource: '/dev/urandom',
      firmware: '',
      enableDebug: true,
      sharedFs: 'virtio-9p',
      msize9p: 16384,
      pcieRootPort: 0,
      hotplugVfioOnRootBus: false,
      hotPlugVfio: 'no-port',
    });
    expect(c.agent).toEqual({ enableDebug: true, dialTimeout: 30, kernelModules: [] });
    expect(c.warnings).toEqual([]);
  });

  it("reads firmware (arm64's AAVMF, booted with -bios); empty is none", () => {
    const c = parseConfig(
      '[hypervisor.qemu]\nfirmware = "/usr/share/AAVMF/AAVMF_CODE.fd"\nfirmware_volume = "/usr/share/AAVMF/AAVMF_VARS.fd"\n',
      '/c.toml',
      'aarch64',
    );
    expect(c.hypervisor.firmware).toBe('/usr/share/AAVMF/AAVMF_CODE.fd');
    expect(c.warnings).toEqual([]);
    expect(defaultConfig('aarch64').hypervisor.firmware).toBe('');
    expect(error(() => parseConfig('[hypervisor.qemu]\nfirmware = 1\n', '/c.toml')).message).toMatch(/hypervisor\.qemu\.firmware: expected a string/);
  });

  it("knows a configuration's guest arch by its QEMU (Kata's files are per arch)", async () => {
    expect(qemuGuestArch('/usr/bin/qemu-system-aarch64')).toBe('aarch64');
    expect(qemuGuestArch('qemu-system-x86_64')).toBe('x86_64');
    expect(qemuGuestArch('/opt/kata/bin/qemu-system-ppc64')).toBeUndefined();
    expect(qemuGuestArch('/usr/bin/qemu-system-aarch64-wrapper')).toBeUndefined();
    const dir = await mkdtemp(join(tmpdir(), 'osb-cfg-arch-'));
    try {
      const write = async (name: string, text: string) => (await writeFile(join(dir, name), text), join(dir, name));
      expect(await configFileArch(await write('arm.toml', '[hypervisor.qemu]\npath = "/usr/bin/qemu-system-aarch64"\n'))).toBe('aarch64');
      expect(await configFileArch(await write('none.toml', '[agent.kata]\ndial_timeout = 5\n'))).toBeUndefined();
      expect(await configFileArch(await write('bad.toml', '[hypervisor.qemu\n'))).toBeUndefined();
      expect(await configFileArch(join(dir, 'missing.toml'))).toBeUndefined();
      expect(parseConfig('[hypervisor.qemu]\npath = "/usr/bin/qemu-system-aarch64"\n', null, 'aarch64').arch).toBe('aarch64');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has Kata-like defaults without a file', () => {
    const c = defaultConfig();
    expect(c.hypervisor.kernel).toBe('/usr/share/kata-containers/vmlinux.container');
    expect(c.hypervisor.image).toBe('/usr/share/kata-containers/kata-containers.img');
    expect(c.hypervisor.machineType).toBe('q35');
    expect(defaultConfig('aarch64').hypervisor.machineType).toBe('virt');
    expect(defaultConfig('aarch64').hypervisor.path).toBe('qemu-system-aarch64');
    expect(c.hypervisor.blockDeviceDriver).toBe('virtio-scsi');
  });

  it("accepts every block_device_driver Kata accepts (it drives Kata's volumes, not the image)", () => {
    for (const d of ['virtio-scsi', 'virtio-blk', 'virtio-mmio', 'nvdimm', 'virtio-blk-ccw']) {
      expect(parseConfig(`[hypervisor.qemu]\nblock_device_driver = "${d}"\n`, 'c.toml').hypervisor.blockDeviceDriver).toBe(d);
    }
  });

  it('an initrd in the file replaces the default image', () => {
    const c = parseConfig('[hypervisor.qemu]\ninitrd = "/x/kata.initrd"\n', 'c.toml');
    expect(c.hypervisor.initrd).toBe('/x/kata.initrd');
    expect(c.hypervisor.image).toBeNull();
    // Kata's files ship image = "" when the initrd is used.
    const d = parseConfig('[hypervisor.qemu]\nimage = ""\ninitrd = "/x/kata.initrd"\n', 'c.toml');
    expect(d.hypervisor.image).toBeNull();
  });

  it('image and initrd both set is an error, as in Kata', () => {
    const e = error(() => parseConfig('[hypervisor.qemu]\nimage = "/a.img"\ninitrd = "/a.initrd"\n', 'c.toml'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/hypervisor\.qemu\.image and hypervisor\.qemu\.initrd are both set in c\.toml/);
  });

  it('unknown keys and tables are warnings naming them', () => {
    const c = parseConfig(
      '[hypervisor.qemu]\nkernal = "/typo"\n[hypervisor.firecracker]\npath = "/fc"\n[agent.kata]\ndial_timeot = 3\n[weird]\nx = 1\n',
      'c.toml',
    );
    expect(c.warnings).toEqual([
      'unknown key hypervisor.qemu.kernal in c.toml (ignored)',
      '[hypervisor.firecracker] is ignored: osbuilder boots with QEMU ([hypervisor.qemu])',
      'unknown key agent.kata.dial_timeot in c.toml (ignored)',
      'unknown table weird in c.toml (ignored)',
    ]);
  });

  it.each([
    ['default_vcpus = "two"', 'hypervisor.qemu.default_vcpus: expected a whole number, got "two"'],
    ['default_vcpus = 0', 'hypervisor.qemu.default_vcpus: must be between 1 and 288, got 0'],
    ['default_memory = 1.5', 'hypervisor.qemu.default_memory: expected a whole number, got 1.5'],
    ['enable_debug = "yes"', 'hypervisor.qemu.enable_debug: expected true or false, got "yes"'],
    ['machine_type = "microvm"', 'hypervisor.qemu.machine_type: must be one of q35, pc, virt, got "microvm"'],
    [
      'block_device_driver = "ide"',
      'hypervisor.qemu.block_device_driver: must be one of virtio-scsi, virtio-blk, virtio-mmio, nvdimm, virtio-blk-ccw, got "ide"',
    ],
    ['kernel = 3', 'hypervisor.qemu.kernel: expected a string, got 3'],
    ['kernel = ""', 'hypervisor.qemu.kernel: must not be empty'],
    ['path = ["a"]', 'hypervisor.qemu.path: expected a string, got an array'],
    ['shared_fs = "virtio-fs"', 'hypervisor.qemu.shared_fs: must be one of virtio-9p, none, got "virtio-fs"'],
    ['msize_9p = 100', 'hypervisor.qemu.msize_9p: must be between 4096 and 1048576, got 100'],
  ])('rejects %s naming the key', (line, message) => {
    const e = error(() => parseConfig(`[hypervisor.qemu]\n${line}\n`, 'c.toml'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toBe(message);
    expect(e.hint).toMatch(/in c\.toml/);
  });

  it('rejects a bad agent key', () => {
    const e = error(() => parseConfig('[agent.kata]\ndial_timeout = -1\n', null));
    expect(e.message).toBe('agent.kata.dial_timeout: must be between 1 and 3600, got -1');
  });

  it('kernel_modules: split on whitespace as kata-runtime does, blank entries dropped; options and non-strings refused', () => {
    const c = parseConfig('[agent.kata]\nkernel_modules = ["e1000e InterruptThrottleRate=3000,3000  EEE=1", "  ", "i915"]\n', 'c.toml');
    expect(c.agent.kernelModules).toEqual([
      { name: 'e1000e', parameters: ['InterruptThrottleRate=3000,3000', 'EEE=1'] },
      { name: 'i915', parameters: [] },
    ]);
    expect(c.warnings).toEqual([]);
    const opt = error(() => parseConfig('[agent.kata]\nkernel_modules = ["-r loop"]\n', 'c.toml'));
    expect(opt.code).toBe('CONFIG_INVALID');
    expect(opt.message).toBe('agent.kata.kernel_modules in c.toml: "-r" is not a module name');
    expect(error(() => parseConfig('[agent.kata]\nkernel_modules = ["loop --force"]\n', null)).message).toBe(
      'agent.kata.kernel_modules: parameter "--force" of loop would be a modprobe option',
    );
    expect(error(() => parseConfig('[agent.kata]\nkernel_modules = "loop"\n', null)).message).toBe(
      'agent.kata.kernel_modules: expected an array of strings, got "loop"',
    );
    expect(error(() => parseConfig('[agent.kata]\nkernel_modules = [1]\n', null)).message).toBe(
      'agent.kata.kernel_modules: expected an array of strings, got an array',
    );
  });

  it('reports TOML syntax errors with line and column', () => {
    const e = error(() => parseConfig('[hypervisor.qemu]\nkernel = /no/quotes\n', 'bad.toml'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/^bad\.toml is not valid TOML: .*\(line 2, column \d+\)/);
  });
});

describe('command-line overrides', () => {
  const base = parseConfig('[hypervisor.qemu]\nimage = "/a.img"\nkernel_params = "a=1"\n', 'c.toml');

  it('--initrd replaces the configured image (and vice versa); params append', () => {
    const c = applyOverrides(base, { initrd: '/b.initrd', kernelParams: 'b=2', vcpus: 4, memory: 256 });
    expect(c.hypervisor.image).toBeNull();
    expect(c.hypervisor.initrd).toBe('/b.initrd');
    expect(c.hypervisor.kernelParams).toBe('a=1 b=2');
    expect(c.hypervisor.defaultVcpus).toBe(4);
    expect(c.hypervisor.defaultMemory).toBe(256);
    expect(base.hypervisor.image).toBe('/a.img');
  });

  it('--image with --initrd is a usage error; bad numbers name the flag', () => {
    expect(error(() => applyOverrides(base, { image: '/x', initrd: '/y' })).code).toBe('USAGE');
    expect(error(() => applyOverrides(base, { vcpus: 0 })).message).toBe('--vcpus: must be between 1 and 288, got 0');
    expect(error(() => applyOverrides(base, { memory: Number.NaN })).message).toMatch(/^--memory: expected a whole number/);
    expect(error(() => applyOverrides(base, { machineType: 'isapc' })).message).toMatch(/^--machine-type: must be one of/);
  });

  it('--kernel-module appends to kernel_modules', () => {
    const withOne = parseConfig('[agent.kata]\nkernel_modules = ["loop max_loop=4"]\n', 'c.toml');
    const c = applyOverrides(withOne, { kernelModules: ['osb_hello greeting=hi', 'dummy'] });
    expect(c.agent.kernelModules.map((m) => m.name)).toEqual(['loop', 'osb_hello', 'dummy']);
    expect(c.agent.kernelModules[1]!.parameters).toEqual(['greeting=hi']);
    expect(withOne.agent.kernelModules).toHaveLength(1);
    expect(error(() => applyOverrides(base, { kernelModules: ['bad/name'] })).message).toBe('--kernel-module: "bad/name" is not a module name');
  });
});

describe('finding the configuration', () => {
  it('--config, then $KATA_CONF_FILE, then Kata default paths, else none', async () => {
    const none = async () => false;
    expect(await findConfig('/x.toml', { KATA_CONF_FILE: '/y.toml' }, none)).toBe('/x.toml');
    expect(await findConfig(undefined, { KATA_CONF_FILE: '/y.toml' }, none)).toBe('/y.toml');
    expect(await findConfig(undefined, {}, async (p) => p === '/usr/share/defaults/kata-containers/configuration.toml')).toBe(
      '/usr/share/defaults/kata-containers/configuration.toml',
    );
    expect(await findConfig(undefined, {}, none)).toBeNull();
  });
});
