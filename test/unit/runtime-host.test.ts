/** Host checks: cpuinfo and module parsing, the probe guest image and how its result is read; the env report. */
import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describeProbe, moduleState, parseCpuinfo, probeArgv, type HostReport } from '../../runtime/host.js';
import { parseConfig } from '../../runtime/config.js';
import { envReport, envToml } from '../../runtime/env.js';
import { PROBE_EXIT_STATUS, probeGuestImage } from '../../runtime/probe-guest.js';

describe('parseCpuinfo', () => {
  it('finds vendor, model and vmx/svm', () => {
    const intel = 'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu vme vmx sse\n';
    expect(parseCpuinfo(intel)).toEqual({ vendor: 'GenuineIntel', model: 'Intel(R) Xeon(R)', virtualization: 'vmx' });
    const amd = 'vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu svm\n';
    expect(parseCpuinfo(amd).virtualization).toBe('svm');
    const nested = 'vendor_id\t: GenuineIntel\nmodel name\t: X\nflags\t\t: fpu hypervisor\n';
    expect(parseCpuinfo(nested).virtualization).toBeNull();
    expect(parseCpuinfo('').vendor).toBe('unknown');
  });
});

describe('moduleState', () => {
  it('reads /proc/modules and /sys/module (built-in modules have no /proc/modules line)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'osb-mod-'));
    await mkdir(join(root, 'proc'), { recursive: true });
    await writeFile(join(root, 'proc/modules'), 'kvm_intel 380928 0 - Live 0x0\nvhost_net 32768 0 - Live 0x0\n');
    await mkdir(join(root, 'sys/module/kvm'), { recursive: true });
    expect(await moduleState(['kvm', 'kvm_intel', 'kvm_amd', 'vhost_net', 'vhost_vsock'], root)).toEqual({
      kvm: true,
      kvm_intel: true,
      kvm_amd: false,
      vhost_net: true,
      vhost_vsock: false,
    });
  });
});

describe('probe guest', () => {
  it('is a multiboot image with a valid header (a.out kludge, entry after the header)', () => {
    const img = probeGuestImage();
    const [magic, flags, checksum, headerAddr, loadAddr, loadEnd, bssEnd, entry] = Array.from({ length: 8 }, (_, i) => img.readUInt32LE(i * 4));
    expect(magic).toBe(0x1badb002);
    expect(flags).toBe(0x00010000);
    expect((magic! + flags! + checksum!) >>> 0).toBe(0);
    expect([headerAddr, loadAddr, loadEnd, bssEnd]).toEqual([0x100000, 0x100000, 0, 0]);
    expect(entry).toBe(0x100000 + 32);
    // It ends by writing 0x21 to port 0xf4 (mov $0xf4,%dx; mov $0x21,%al; out %al,%dx).
    expect(img.includes(Buffer.from([0x66, 0xba, 0xf4, 0x00, 0xb0, 0x21, 0xee]))).toBe(true);
    expect(PROBE_EXIT_STATUS).toBe(67);
  });

  it('runs on a pc machine with isa-debug-exit and the serial port on stdout', () => {
    expect(probeArgv('kvm', '/p.bin', 'n')).toEqual([
      '-name',
      'n',
      '-machine',
      'pc,accel=kvm',
      '-no-user-config',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-m',
      '64',
      '-chardev',
      'stdio,id=s0,signal=off',
      '-serial',
      'chardev:s0',
      '-device',
      'isa-debug-exit,iobase=0xf4,iosize=0x04',
      '-kernel',
      '/p.bin',
    ]);
  });

  it('reads the verdict from the exit status and the markers', () => {
    expect(describeProbe('tcg', 'SLMC', { exitCode: 67, timedOut: false, timeoutMs: 1000, stderr: '' })).toEqual({
      ok: true,
      detail: 'probe guest ran to the end under tcg',
    });
    const stalled = describeProbe('kvm', 'SLM', { exitCode: null, timedOut: true, timeoutMs: 8000, stderr: '' });
    expect(stalled.ok).toBe(false);
    expect(stalled.detail).toBe(
      'the guest started, entered long mode, touched 16 MiB, but did not finish its 10^8-iteration loop within 8000 ms: guest code does not run (or runs far too slowly) under kvm',
    );
    const never = describeProbe('kvm', '', { exitCode: null, timedOut: true, timeoutMs: 8000, stderr: '' });
    expect(never.detail).toMatch(/^the guest did not start within 8000 ms/);
    const failed = describeProbe('kvm', '', { exitCode: 1, timedOut: false, timeoutMs: 8000, stderr: 'qemu: failed to initialize kvm: Permission denied\n' });
    expect(failed).toEqual({ ok: false, detail: 'QEMU exited with 1: qemu: failed to initialize kvm: Permission denied' });
    // All markers but a wrong exit status is not a pass.
    expect(describeProbe('kvm', 'SLMC', { exitCode: 0, timedOut: false, timeoutMs: 8000, stderr: '' }).ok).toBe(false);
  });
});

describe('env report (kata-env sections)', () => {
  const host: HostReport = {
    arch: 'x86_64',
    kernel: '6.1.0-test',
    cpu: { vendor: 'GenuineIntel', model: 'X', virtualization: null },
    kvm: { device: true, accessible: true, modules: { kvm: true }, usable: false, probe: null },
    vhostVsock: { device: false, accessible: false },
    qemu: { path: '/usr/bin/qemu-system-x86_64', version: '7.2.0' },
    tcg: { available: true, probe: null },
    accel: { auto: 'tcg', reason: 'KVM is present but not usable: the guest did not start' },
    agentChannel: { auto: 'serial', reason: '/dev/vhost-vsock does not exist: virtio-serial port agent.channel.0' },
  };
  const files = { kernel: true, image: { exists: true, size: 128 << 20 }, initrd: false };

  it('has the sections in order, the image root parameters and the channel the boot would use; TOML round-trips', () => {
    const config = parseConfig('[hypervisor.qemu]\nkernel = "/k"\nimage = "/i.img"\nkernel_params = "foo=1"\n[agent.kata]\ndial_timeout = 9\n', 'c.toml');
    const r = envReport(config, host, files, { name: 'Debian GNU/Linux', version: '12' }, '7.2.0');
    expect(Object.keys(r)).toEqual(['Meta', 'Kernel', 'Image', 'Initrd', 'Hypervisor', 'Agent', 'Host']);
    expect(r.Meta.ConfigFile).toBe('c.toml');
    expect(r.Kernel.Parameters).toMatch(/^root=\/dev\/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4 .* foo=1$/);
    expect(r.Image).toEqual({
      Path: '/i.img',
      Exists: true,
      Size: 128 << 20,
      Nvdimm: true,
      RootParameters: 'root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4',
    });
    expect(r.Initrd).toEqual({ Path: '', Exists: false });
    expect(r.Hypervisor).toMatchObject({ Path: '/usr/bin/qemu-system-x86_64', Version: '7.2.0', Accelerator: 'tcg', MachineType: 'q35' });
    expect(r.Agent).toEqual({ Debug: false, DialTimeout: 9, Channel: 'serial', VsockPort: 1024, SerialPort: 'agent.channel.0' });
    expect(r.Host).toMatchObject({
      VMContainerCapable: false,
      SupportVSocks: false,
      Distro: { Name: 'Debian GNU/Linux', Version: '12' },
      KVM: { Device: true, Usable: false },
    });
    const back = parseToml(envToml(r)) as Record<string, Record<string, unknown>>;
    expect(back.Image!.RootParameters).toBe(r.Image.RootParameters);
    expect(back.Agent!.DialTimeout).toBe(9);
  });

  it('an initrd has no root parameters; virtio-blk without nvdimm', () => {
    const initrd = envReport(parseConfig('[hypervisor.qemu]\ninitrd = "/x.initrd"\n', null), host, { ...files, initrd: true }, { name: '', version: '' }, null);
    expect(initrd.Image).toMatchObject({ Path: '', Nvdimm: false, RootParameters: '' });
    expect(initrd.Kernel.Parameters).not.toMatch(/root=/);
    const blk = envReport(
      parseConfig('[hypervisor.qemu]\nimage = "/i.img"\ndisable_image_nvdimm = true\n', null),
      host,
      files,
      { name: '', version: '' },
      null,
    );
    expect(blk.Image.RootParameters).toBe('root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4');
  });

  it("an aarch64 configuration on this x86_64 host gets the guest's kernel parameters (arm64's), not the host's", () => {
    const arm = envReport(
      parseConfig('[hypervisor.qemu]\npath = "/usr/bin/qemu-system-aarch64"\nmachine_type = "virt"\n', null, 'aarch64'),
      host,
      files,
      { name: '', version: '' },
      null,
    );
    expect(arm.Kernel.Parameters).toContain('iommu.passthrough=0');
    expect(arm.Kernel.Parameters).not.toContain('tsc=reliable');
  });
});
