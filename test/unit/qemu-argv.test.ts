/** The QEMU command line, planned as data: image (nvdimm / virtio), initrd, q35/pc, arm64 virt, channels. */
import { describe, expect, it } from 'vitest';
import { kernelParams, planQemu, qemuEscape, rootParams, type QemuPlanInput } from '../../runtime/qemu.js';
import { parseConfig } from '../../runtime/config.js';

const base: QemuPlanInput = {
  arch: 'x86_64',
  qemu: '/usr/bin/qemu-system-x86_64',
  machineType: 'q35',
  accel: 'tcg',
  kernel: '/k/vmlinux',
  root: { kind: 'image', path: '/i/kata.img', sizeBytes: 128 * 1024 * 1024, nvdimm: true, rootfsType: 'ext4' },
  vcpus: 2,
  memoryMiB: 512,
  channel: { kind: 'serial', socket: '/run/vm/agent.sock' },
  qmpSocket: '/run/vm/qmp.sock',
  console: 'hvc',
  entropySource: '/dev/urandom',
  name: 'osb-test-vm',
  debug: false,
  agentDebug: false,
};

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe('QEMU argv: x86_64 image via nvdimm (q35)', () => {
  const plan = planQemu(base);
  it('matches the whole command line', () => {
    expect([plan.cmd, ...plan.args]).toMatchSnapshot();
  });

  it('uses a q35 machine with nvdimm and the image as a read-only memory-backend-file', () => {
    expect(values(plan.args, '-machine')).toEqual(['q35,accel=tcg,nvdimm=on']);
    expect(values(plan.args, '-object')).toContain('memory-backend-file,id=mem0,mem-path=/i/kata.img,size=134217728,readonly=on');
    expect(values(plan.args, '-device')).toContain('nvdimm,id=nv0,memdev=mem0,unarmed=on');
    expect(values(plan.args, '-m')).toEqual(['512M,slots=10,maxmem=1664M']);
    expect(plan.args).not.toContain('-initrd');
    expect(plan.args).not.toContain('-drive');
  });

  it("boots Kata's kernel command line with the pmem root", () => {
    const append = values(plan.args, '-append')[0]!;
    expect(append.startsWith('root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4 ')).toBe(true);
    for (const p of [
      'tsc=reliable',
      'no_timer_check',
      'rcupdate.rcu_expedited=1',
      'i8042.direct=1',
      'i8042.dumbkbd=1',
      'i8042.nopnp=1',
      'i8042.noaux=1',
      'noreplace-smp',
      'reboot=k',
      'console=hvc0',
      'console=hvc1',
      'cryptomgr.notests',
      'net.ifnames=0',
      'pci=lastbus=0',
      'iommu=off',
      'panic=1',
      'quiet',
    ]) {
      expect(append.split(' ')).toContain(p);
    }
    expect(append).toContain('systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket');
    expect(plan.kernelParams.join(' ')).toBe(append);
  });

  it('has the agent on virtio-serial port agent.channel.0 behind a host unix socket, QMP, rng, console', () => {
    expect(values(plan.args, '-chardev')).toEqual(['stdio,id=charconsole0,signal=off', 'socket,id=charch0,path=/run/vm/agent.sock,server=on,wait=off']);
    expect(values(plan.args, '-device')).toEqual(
      expect.arrayContaining([
        'virtio-serial-pci,disable-modern=false,id=serial0',
        'virtconsole,chardev=charconsole0,id=console0',
        'virtserialport,chardev=charch0,id=channel0,name=agent.channel.0',
        'virtio-rng-pci,rng=rng0',
      ]),
    );
    expect(values(plan.args, '-qmp')).toEqual(['unix:/run/vm/qmp.sock,server=on,wait=off']);
    expect(values(plan.args, '-object')).toContain('rng-random,id=rng0,filename=/dev/urandom');
    expect(values(plan.args, '-name')).toEqual(['osb-test-vm']);
    expect(plan.args).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config', '-no-reboot']));
    expect(values(plan.args, '-smp')).toEqual(['2,cores=1,threads=1,sockets=2,maxcpus=2']);
    expect(values(plan.args, '-cpu')).toEqual(['max']);
  });
});

describe('QEMU argv variants', () => {
  it('initrd: -initrd, no root device, no nvdimm', () => {
    const plan = planQemu({ ...base, root: { kind: 'initrd', path: '/i/kata.initrd' } });
    expect(values(plan.args, '-initrd')).toEqual(['/i/kata.initrd']);
    expect(values(plan.args, '-machine')).toEqual(['q35,accel=tcg']);
    expect(values(plan.args, '-m')).toEqual(['512M']);
    expect(plan.kernelParams.some((p) => p.startsWith('root='))).toBe(false);
    expect([plan.cmd, ...plan.args]).toMatchSnapshot();
  });

  it('pc machine with KVM: kernel_irqchip, host cpu, the PIT policy', () => {
    const plan = planQemu({ ...base, machineType: 'pc', accel: 'kvm' });
    expect(values(plan.args, '-machine')).toEqual(['pc,accel=kvm,kernel_irqchip=on,nvdimm=on']);
    expect(values(plan.args, '-cpu')).toEqual(['host,pmu=off']);
    expect(values(plan.args, '-global')).toEqual(['kvm-pit.lost_tick_policy=discard']);
  });

  it('disable_image_nvdimm: a read-only virtio-blk disk and root=/dev/vda1 without dax', () => {
    const plan = planQemu({ ...base, root: { ...(base.root as Extract<QemuPlanInput['root'], { kind: 'image' }>), nvdimm: false } });
    expect(values(plan.args, '-drive')).toEqual(['id=image,file=/i/kata.img,format=raw,if=none,readonly=on,aio=threads']);
    expect(values(plan.args, '-device')).toContain('virtio-blk-pci,disable-modern=false,drive=image,id=image0');
    expect(values(plan.args, '-machine')).toEqual(['q35,accel=tcg']);
    expect(plan.kernelParams.slice(0, 4)).toEqual(['root=/dev/vda1', 'rootflags=data=ordered,errors=remount-ro', 'ro', 'rootfstype=ext4']);
  });

  it("block_device_driver (Kata's default virtio-scsi) does not change the image: still virtio-blk, root=/dev/vda1", () => {
    const config = parseConfig('[hypervisor.qemu]\nblock_device_driver = "virtio-scsi"\ndisable_image_nvdimm = true\n', 'c.toml');
    expect(config.hypervisor.blockDeviceDriver).toBe('virtio-scsi');
    const plan = planQemu({
      ...base,
      root: { kind: 'image', path: '/i/kata.img', sizeBytes: 1 << 27, nvdimm: !config.hypervisor.disableImageNvdimm, rootfsType: 'ext4' },
    });
    expect(values(plan.args, '-device')).toContain('virtio-blk-pci,disable-modern=false,drive=image,id=image0');
    expect(plan.args.join(' ')).not.toMatch(/scsi/);
    expect(plan.kernelParams[0]).toBe('root=/dev/vda1');
  });

  it('xfs and erofs roots', () => {
    expect(rootParams({ kind: 'image', path: 'x', sizeBytes: 1, nvdimm: true, rootfsType: 'xfs' })).toEqual([
      'root=/dev/pmem0p1',
      'rootflags=dax',
      'ro',
      'rootfstype=xfs',
    ]);
    expect(rootParams({ kind: 'image', path: 'x', sizeBytes: 1, nvdimm: false, rootfsType: 'erofs' })).toEqual(['root=/dev/vda1', 'ro', 'rootfstype=erofs']);
  });

  it('vsock channel: vhost-vsock-pci with the guest CID, no virtserialport', () => {
    const plan = planQemu({ ...base, channel: { kind: 'vsock', cid: 1234 } });
    expect(values(plan.args, '-device')).toContain('vhost-vsock-pci,disable-modern=false,id=vsock-1234,guest-cid=1234');
    expect(plan.args.join(' ')).not.toContain('agent.channel.0');
  });

  it('serial console: the UART and console=ttyS0', () => {
    const plan = planQemu({ ...base, console: 'serial' });
    expect(values(plan.args, '-serial')).toEqual(['chardev:charconsole0']);
    expect(plan.args.join(' ')).not.toContain('virtconsole');
    expect(plan.kernelParams).toContain('console=ttyS0');
    expect(plan.kernelParams).not.toContain('console=hvc0');
  });

  it('arm64 virt: gic, no x86 params, ttyAMA0 for a serial console', () => {
    const plan = planQemu({ ...base, arch: 'aarch64', qemu: 'qemu-system-aarch64', machineType: 'virt', firmware: '/usr/share/AAVMF/AAVMF_CODE.fd' });
    expect(values(plan.args, '-machine')).toEqual(['virt,accel=tcg,usb=off,gic-version=max,nvdimm=on']);
    expect(values(plan.args, '-bios')).toEqual(['/usr/share/AAVMF/AAVMF_CODE.fd']);
    expect(plan.kernelParams).toContain('iommu.passthrough=0');
    expect(plan.kernelParams).not.toContain('tsc=reliable');
    expect(plan.args).not.toContain('-rtc');
    expect([plan.cmd, ...plan.args]).toMatchSnapshot();
    const kvm = planQemu({ ...base, arch: 'aarch64', machineType: 'virt', accel: 'kvm', console: 'serial', root: { kind: 'initrd', path: '/i/x.initrd' } });
    expect(values(kvm.args, '-machine')[0]).toContain('gic-version=host');
    expect(kvm.kernelParams).toContain('console=ttyAMA0');
    expect(kvm.args).not.toContain('-bios');
  });

  it('arm64: an nvdimm image needs UEFI firmware (ACPI NFIT); virtio-blk and initrds boot without', () => {
    const arm = { ...base, arch: 'aarch64' as const, qemu: 'qemu-system-aarch64', machineType: 'virt' };
    expect(() => planQemu(arm)).toThrow(/an aarch64 guest sees an nvdimm image only through UEFI firmware/);
    try {
      planQemu(arm);
    } catch (e) {
      expect(e).toMatchObject({
        code: 'CONFIG_INVALID',
        hint: expect.stringMatching(/firmware = "\/usr\/share\/AAVMF\/AAVMF_CODE.fd".*disable_image_nvdimm = true/),
      });
    }
    const blk = planQemu({ ...arm, root: { kind: 'image', path: '/i/kata.img', sizeBytes: 1 << 27, nvdimm: false, rootfsType: 'ext4' } });
    expect(blk.kernelParams).toContain('root=/dev/vda1');
    expect(blk.args).not.toContain('-bios');
    // x86_64 finds nvdimm in its ACPI tables without firmware of its own (SeaBIOS'): nothing to check.
    expect(() => planQemu(base)).not.toThrow();
  });

  it('refuses machine types of the other arch', () => {
    expect(() => planQemu({ ...base, machineType: 'virt' })).toThrow(/machine type virt is not supported for x86_64/);
    expect(() => planQemu({ ...base, arch: 'aarch64', machineType: 'q35' })).toThrow(/not supported for aarch64/);
  });

  it('debug switches, extra params appended last, commas escaped in paths', () => {
    const p = kernelParams({
      arch: 'x86_64',
      root: { kind: 'initrd', path: 'x' },
      console: 'hvc',
      debug: true,
      agentDebug: true,
      extraKernelParams: ' foo=1  bar ',
    });
    expect(p).toContain('debug');
    expect(p).not.toContain('quiet');
    expect(p).toContain('agent.log=debug');
    expect(p.slice(-2)).toEqual(['foo=1', 'bar']);
    expect(qemuEscape('/a,b/c')).toBe('/a,,b/c');
    const plan = planQemu({ ...base, root: { kind: 'image', path: '/i/a,b.img', sizeBytes: 1 << 27, nvdimm: true, rootfsType: 'ext4' } });
    expect(values(plan.args, '-object')[0]).toContain('mem-path=/i/a,,b.img,');
  });
});

describe("QEMU argv: the sandbox's shared directory (shared_fs = virtio-9p)", () => {
  it('exports the directory as kataShared over virtio-9p, as kata-runtime does', () => {
    const plan = planQemu({ ...base, sharedDir: '/run/kata-containers/shared/sandboxes/sb,1/shared' });
    expect(values(plan.args, '-device')).toContain('virtio-9p-pci,disable-modern=false,fsdev=extra-9p-kataShared,mount_tag=kataShared');
    expect(values(plan.args, '-fsdev')).toEqual([
      'local,id=extra-9p-kataShared,path=/run/kata-containers/shared/sandboxes/sb,,1/shared,security_model=none,multidevs=remap',
    ]);
    expect(planQemu(base).args).not.toContain('-fsdev');
  });
});
