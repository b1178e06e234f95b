import { describe, expect, it } from 'vitest';
import { checkBootTestable, chooseKernelSource, DEFAULT_KERNEL_VERSION, pickDebianSource, makeJobs, planBuild } from '../../pipeline/plan.js';

const debianSrc = { path: '/usr/src/linux-source-6.1.tar.xz', version: '6.1' };
const sha = 'ab'.repeat(32);

describe('planBuild', () => {
  it("defaults: debian image with systemd, busybox initrd with the agent as init, the kernel from Debian's linux-source", () => {
    const p = planBuild({ prefix: '/tmp/p' }, debianSrc, 'x86_64');
    expect(p.rootfs.map((r) => [r.role, r.distro.name, r.version, r.agentInit, r.fileName])).toEqual([
      ['image', 'debian', 'bookworm', false, 'kata-debian-bookworm.image'],
      ['initrd', 'busybox', 'bookworm', true, 'kata-busybox-bookworm.initrd'],
    ]);
    expect(p.kernels).toEqual([{ variant: 'default' }]);
    expect(p.kernelSource).toEqual({ kind: 'debian-package', source: debianSrc.path, version: '6.1' });
    expect(p).toMatchObject({
      arch: 'x86_64',
      prefix: '/tmp/p',
      shareDir: '/tmp/p/usr/share/kata-containers',
      defaultsDir: '/tmp/p/usr/share/defaults/kata-containers',
      jobs: 1,
      cache: true,
      bootTest: true,
      force: false,
      engine: 'docker',
    });
  });

  it('a distro names the image and the initrd; a distro without systemd makes its image with the agent as init', () => {
    const a = planBuild({ distro: 'alpine', initrd: true }, undefined, 'x86_64');
    expect(a.rootfs.map((r) => [r.role, r.distro.name, r.agentInit])).toEqual([['initrd', 'alpine', true]]);
    expect(a.kernels).toEqual([]);
    const b = planBuild({ distro: 'busybox', image: true }, undefined, 'x86_64');
    expect(b.rootfs.map((r) => [r.role, r.agentInit])).toEqual([['image', true]]);
    const c = planBuild({ distro: 'ubuntu', initrdDistro: 'busybox' }, undefined, 'x86_64');
    expect(c.rootfs.map((r) => `${r.role}:${r.distro.name}:${r.version}`)).toEqual(['image:ubuntu:jammy', 'initrd:busybox:bookworm']);
  });

  it('-g nvidia adds the GPU kernel to what is built; the flags select what is built', () => {
    expect(planBuild({ gpu: 'nvidia' }, debianSrc, 'x86_64').kernels).toEqual([{ variant: 'default' }, { variant: 'nvidia' }]);
    expect(planBuild({ gpu: 'nvidia' }, debianSrc, 'x86_64').rootfs.map((r) => r.role)).toEqual(['image', 'initrd']);
    expect(planBuild({ gpu: 'nvidia', image: true }, debianSrc, 'x86_64').rootfs.map((r) => r.role)).toEqual(['image']);
    expect(planBuild({ gpu: 'nvidia', image: true }, debianSrc, 'x86_64').kernels).toHaveLength(2);
    const p = planBuild({ image: true, kernel: true, noCache: true, noBootTest: true, jobs: 3, force: true }, debianSrc, 'x86_64');
    expect(p.rootfs.map((r) => r.role)).toEqual(['image']);
    expect(p).toMatchObject({ cache: false, bootTest: false, jobs: 3, force: true });
  });

  it('refuses bad input before any work', () => {
    expect(() => planBuild({ distro: 'gentoo' }, undefined, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'UNKNOWN_DISTRO', message: expect.stringContaining('valid distros: alpine, busybox') }),
    );
    expect(() => planBuild({ gpu: 'amd' }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(() => planBuild({ jobs: 0 }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => planBuild({ arch: 'mips' }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_ARCH' }));
    expect(() => planBuild({ distro: 'clearlinux', arch: 's390x' }, undefined, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED_ARCH', message: expect.stringContaining('clearlinux does not support s390x') }),
    );
    expect(() => planBuild({ distro: 'debian', osVersion: 'potato' }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
    expect(() => planBuild({ engine: 'native' }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => planBuild({ kernelVersion: '6.x' }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
  });

  it('refuses an option this build would ignore, naming it', () => {
    const refused = (opts: Parameters<typeof planBuild>[0], flag: string) =>
      expect(() => planBuild(opts, undefined, 'x86_64'), flag).toThrow(
        expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(flag), hint: expect.stringContaining(flag) }),
      );
    refused({ accel: 'hvf' }, '--accel');
    refused({ image: true, initrdDistro: 'debian' }, '--initrd-distro');
    for (const o of [{ extraPackages: ['file'] }, { mirror: 'http://m/debian' }, { baseImage: 'b' }, { agent: '/a' }, { osVersion: 'bookworm' }]) {
      refused(
        { kernel: true, ...o },
        `--${Object.keys(o)[0]!
          .replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
          .replace('extra-packages', 'extra-pkgs')}`,
      );
    }
    refused({ kernel: true, noPackageCache: true }, '--no-package-cache');
    refused({ noBootTest: true, accel: 'tcg' }, '--accel');
    refused({ noBootTest: true, bootTimeout: 60 }, '--boot-timeout');
    refused({ image: true, makeJobs: 2 }, '--make-jobs');
    refused({ initrd: true, kernel: true, imageOptions: { verity: true } }, '--verity');
    refused({ initrd: true, kernel: true, imageOptions: { fsType: 'erofs' } }, '--fs-type');
    refused({ image: true, kernel: true, initrdOptions: { compression: 'gzip' } }, '--compression');
    expect(planBuild({ imageOptions: { verity: true } }, undefined, 'x86_64').imageOptions.verity).toBe(true);
    // The image/initrd stages' own checks run before any work.
    expect(() => planBuild({ imageOptions: { fsType: 'btrfs' } }, undefined, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('btrfs') }),
    );
    expect(() => planBuild({ imageOptions: { partitionTable: 'gpt' } }, undefined, 'x86_64')).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(() => planBuild({ initrdOptions: { compression: 'gzip', level: 12 } }, undefined, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('--level 12') }),
    );
    // What the build does use is accepted.
    expect(
      planBuild({ initrd: true, initrdDistro: 'debian', accel: 'kvm', bootTimeout: 60, extraPackages: ['file'] }, undefined, 'x86_64').rootfs,
    ).toHaveLength(1);
  });
});

describe('nothing is installed untested unless --no-boot-test', () => {
  it('an image/initrd built without a kernel is boot-tested with the installed one; with none installed it is refused, the hint naming --kernel and --no-boot-test', () => {
    const p = planBuild({ image: true, prefix: '/tmp/p' }, debianSrc, 'x86_64');
    expect(() => checkBootTestable(p, true)).not.toThrow();
    expect(() => checkBootTestable(p, false)).toThrow(
      expect.objectContaining({
        code: 'INPUT_NOT_FOUND',
        message:
          'no kernel to boot-test kata-debian-bookworm.image with: none is built in this run and none is installed at /tmp/p/usr/share/kata-containers/vmlinuz.container',
        hint: expect.stringMatching(/--kernel\b.*--no-boot-test/),
      }),
    );
    const both = planBuild({ distro: 'debian', image: true, initrd: true }, debianSrc, 'x86_64');
    expect(() => checkBootTestable(both, false)).toThrow(/kata-debian-bookworm\.image and kata-debian-bookworm\.initrd/);
  });

  it('a kernel built without an image or initrd is refused; a build of both needs nothing installed', () => {
    expect(() => checkBootTestable(planBuild({ kernel: true }, debianSrc, 'x86_64'), true)).toThrow(
      expect.objectContaining({ code: 'USAGE', hint: expect.stringMatching(/--image.*--no-boot-test/) }),
    );
    expect(() => checkBootTestable(planBuild({ gpu: 'nvidia', initrd: true }, debianSrc, 'x86_64'), false)).not.toThrow();
    expect(() => checkBootTestable(planBuild({}, debianSrc, 'x86_64'), false)).not.toThrow();
  });

  it('--no-boot-test allows each of them', () => {
    for (const opts of [{ image: true }, { initrd: true }, { kernel: true }]) {
      expect(() => checkBootTestable(planBuild({ ...opts, noBootTest: true }, debianSrc, 'x86_64'), false)).not.toThrow();
    }
  });
});

describe('kernel source choice', () => {
  it('given > Debian linux-source (unless another -v) > kernel.org', () => {
    expect(chooseKernelSource({ kernelSource: '/k.tar.xz', kernelSha256: sha }, debianSrc)).toEqual({ kind: 'given', source: '/k.tar.xz', sha256: sha });
    expect(chooseKernelSource({}, debianSrc)).toEqual({ kind: 'debian-package', source: debianSrc.path, version: '6.1' });
    expect(chooseKernelSource({ kernelVersion: '6.1' }, debianSrc)).toEqual({ kind: 'debian-package', source: debianSrc.path, version: '6.1' });
    expect(chooseKernelSource({ kernelVersion: 'v6.6.30' }, debianSrc)).toEqual({ kind: 'kernel.org', version: '6.6.30' });
    expect(chooseKernelSource({}, undefined)).toEqual({ kind: 'kernel.org', version: DEFAULT_KERNEL_VERSION });
  });

  it("a --kernel-sha256 goes with every source, Debian's package included; it is 64 hex digits, never empty", () => {
    expect(chooseKernelSource({ kernelSha256: sha.toUpperCase() }, debianSrc)).toEqual({
      kind: 'debian-package',
      source: debianSrc.path,
      version: '6.1',
      sha256: sha,
    });
    expect(chooseKernelSource({ kernelVersion: '6.6.30', kernelSha256: sha }, debianSrc)).toEqual({ kind: 'kernel.org', version: '6.6.30', sha256: sha });
    for (const bad of ['', 'ab', `${sha}0`, 'z'.repeat(64)]) {
      expect(() => chooseKernelSource({ kernelSha256: bad }, debianSrc)).toThrow(
        expect.objectContaining({ code: 'INPUT_INVALID', message: expect.stringContaining('--kernel-sha256') }),
      );
    }
  });

  it('refuses a --kernel-sha256 that no kernel build would check', () => {
    expect(() => planBuild({ image: true, kernelSha256: sha }, debianSrc, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('no kernel is built') }),
    );
    expect(planBuild({ image: true, kernel: true, kernelSha256: sha }, debianSrc, 'x86_64').kernelSource).toMatchObject({ sha256: sha });
  });

  it('picks the newest linux-source tarball in /usr/src', () => {
    expect(pickDebianSource(['linux-source-5.10.tar.xz', 'linux-source-6.1.tar.xz', 'linux-source-6.1', 'linux-headers-6.1'])).toEqual(debianSrc);
    expect(pickDebianSource(['linux-source-6.10.tar.xz', 'linux-source-6.9.tar.xz'])?.version).toBe('6.10');
    expect(pickDebianSource(['README'])).toBeUndefined();
  });
});

describe('make -j of the kernel builds', () => {
  it('as given, else the cores split among the kernels built at once', () => {
    expect(makeJobs(undefined, 8, 1)).toBe(8);
    expect(makeJobs(undefined, 8, 2)).toBe(4);
    expect(makeJobs(undefined, 1, 2)).toBe(1);
    expect(makeJobs(undefined, 4, 0)).toBe(4);
    expect(makeJobs(3, 8, 2)).toBe(3);
    expect(() => makeJobs(0, 8, 1)).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('--make-jobs') }));
    // -g nvidia builds two kernels: with --jobs 2 they run at once and share the cores; with --jobs 1, one after the other.
    expect(planBuild({ kernel: true, gpu: 'nvidia', noBootTest: true, jobs: 2 }, undefined, 'x86_64', 8).makeJobs).toBe(4);
    expect(planBuild({ kernel: true, gpu: 'nvidia', noBootTest: true, jobs: 1 }, undefined, 'x86_64', 8).makeJobs).toBe(8);
  });
});
