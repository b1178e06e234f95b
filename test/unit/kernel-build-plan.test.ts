import { describe, expect, it } from 'vitest';
import { planBuild, buildEnv } from '../../kernel/build.js';
import { planBuilderImage, BUILDER_PACKAGES } from '../../kernel/builder-image.js';
import { ARCH_FACTS, hostArch, parseArch } from '../../core/arch.js';
import { KERNEL_ARCH } from '../../kernel/arch.js';
import { checksumFromSums, kernelOrgSumsUrl, kernelOrgUrl, parseKernelVersion, versionFromMakefile, versionMatches } from '../../kernel/version.js';
import { planSource } from '../../kernel/source.js';
import { createArgv } from '../../core/docker.js';
import { codeOf as code } from '../support/errors.js';

describe('planBuild', () => {
  it('x86_64 default: one make for bzImage + vmlinux with -j and ARCH, no modules', () => {
    const p = planBuild({ arch: 'x86_64', jobs: 2, modules: false, devel: false });
    expect(p.steps).toEqual([{ name: 'bzImage vmlinux', args: ['-j2', 'ARCH=x86_64', 'bzImage', 'vmlinux'] }]);
    expect(p.outputs).toEqual({ vmlinuz: 'arch/x86/boot/bzImage', vmlinux: 'vmlinux' });
    expect(p.devel).toEqual({ headers: false, deb: false });
    expect(p.env).toEqual({ KBUILD_BUILD_USER: 'osbuilder', KBUILD_BUILD_HOST: 'kata' });
  });

  it('aarch64 cross build: Image + Image.gz + vmlinux with CROSS_COMPILE', () => {
    const p = planBuild({ arch: 'aarch64', jobs: 8, cross: 'aarch64-linux-gnu-', modules: false, devel: false });
    expect(p.steps[0]!.args).toEqual(['-j8', 'ARCH=arm64', 'CROSS_COMPILE=aarch64-linux-gnu-', 'Image', 'Image.gz', 'vmlinux']);
    expect(p.outputs).toEqual({ vmlinuz: 'arch/arm64/boot/Image.gz', vmlinux: 'arch/arm64/boot/Image' });
    expect(planBuild({ arch: 'ppc64le', jobs: 1, modules: false, devel: false }).steps[0]!.args).toEqual(['-j1', 'ARCH=powerpc', 'vmlinux']);
    expect(planBuild({ arch: 's390x', jobs: 1, modules: false, devel: false }).outputs.vmlinux).toBe('arch/s390/boot/vmlinux');
  });

  it('GPU variant: images + modules, modules_prepare, then the kernel-devel .deb', () => {
    const p = planBuild({ arch: 'x86_64', jobs: 2, modules: true, devel: true, deb: true, sourceDateEpoch: 1700000000 });
    expect(p.steps.map((s) => s.args)).toEqual([
      ['-j2', 'ARCH=x86_64', 'bzImage', 'vmlinux', 'modules'],
      ['-j2', 'ARCH=x86_64', 'modules_prepare'],
      ['-j2', 'ARCH=x86_64', 'bindeb-pkg', 'KDEB_COMPRESS=xz', 'DPKG_FLAGS=-d'],
    ]);
    expect(p.devel).toEqual({ headers: true, deb: true });
    expect(p.env.KBUILD_BUILD_TIMESTAMP).toBe('Tue, 14 Nov 2023 22:13:20 GMT');
  });

  it('GPU headers-only: modules_prepare only, no images, no deb', () => {
    const p = planBuild({ arch: 'x86_64', jobs: 2, modules: true, devel: true, deb: true, headersOnly: true });
    expect(p.steps).toEqual([{ name: 'modules_prepare', args: ['-j2', 'ARCH=x86_64', 'modules_prepare'] }]);
    expect(p.outputs).toEqual({});
    expect(p.devel).toEqual({ headers: true, deb: false });
  });

  it('buildEnv honours SOURCE_DATE_EPOCH', () => {
    expect(buildEnv(0).KBUILD_BUILD_TIMESTAMP).toBe('Thu, 01 Jan 1970 00:00:00 GMT');
  });
});

describe('builder image', () => {
  it('is bootstrapped with mmdebstrap from Debian and tagged by its inputs', () => {
    const p = planBuilderImage({ arch: 'x86_64', mirror: 'http://deb.debian.org/debian' });
    expect(p.bootstrap.cmd).toBe('mmdebstrap');
    expect(p.bootstrap.args[0]).toBe('--variant=minbase');
    expect(p.bootstrap.args.slice(-3)).toEqual(['bookworm', '-', 'http://deb.debian.org/debian']);
    for (const pkg of ['gcc', 'make', 'flex', 'bison', 'bc', 'libelf-dev', 'libssl-dev']) expect(p.packages).toContain(pkg);
    expect(p.bootstrap.args).toContain(`--include=${[...BUILDER_PACKAGES].sort().join(',')}`);
    expect(p.tag).toMatch(/^osbuilder-kernel-builder:bookworm-[0-9a-f]{12}$/);
    expect(planBuilderImage({ arch: 'x86_64', mirror: 'http://deb.debian.org/debian' }).tag).toBe(p.tag);
    expect(planBuilderImage({ arch: 'x86_64', mirror: 'http://mirror.example/debian' }).tag).not.toBe(p.tag);
    expect(p.changes).toContain('LABEL org.osbuilder.role=kernel-builder');
  });

  it('adds the cross compiler for a foreign arch', () => {
    const host = hostArch();
    const other = host === 'aarch64' ? 'x86_64' : 'aarch64';
    expect(planBuilderImage({ arch: other }).packages).toContain(ARCH_FACTS[other].crossPackage);
    expect(planBuilderImage({ arch: host }).packages).not.toContain(ARCH_FACTS[host].crossPackage);
  });

  it('runs make as the caller with the tree mounted at the same path', () => {
    const argv = createArgv({
      image: 'img',
      name: 'n',
      argv: ['make', '-j2'],
      mounts: [{ host: '/w/tree', container: '/w/tree' }],
      workdir: '/w/tree',
      user: '1000:1000',
      env: { KBUILD_BUILD_USER: 'osbuilder' },
    });
    expect(argv).toEqual([
      'create',
      '--rm',
      '--name',
      'n',
      '--user',
      '1000:1000',
      '--workdir',
      '/w/tree',
      '--mount',
      'type=bind,source=/w/tree,target=/w/tree',
      '--env',
      'KBUILD_BUILD_USER=osbuilder',
      'img',
      'make',
      '-j2',
    ]);
    expect(argv.slice(-3)).toEqual(['img', 'make', '-j2']);
  });
});

describe('arch and versions', () => {
  it('maps Kata arch names to the kernel ARCH', () => {
    expect(parseArch('x86_64')).toBe('x86_64');
    expect(parseArch('arm64')).toBe('aarch64');
    expect(ARCH_FACTS[parseArch('s390x')].kernelArch).toBe('s390');
    expect(ARCH_FACTS.ppc64le.kernelArch).toBe('powerpc');
    expect(KERNEL_ARCH.aarch64).toMatchObject({ fragmentDir: 'arm64', vmlinux: 'arch/arm64/boot/Image', vmlinuz: 'arch/arm64/boot/Image.gz' });
    expect(code(() => parseArch('mips'))).toBe('UNSUPPORTED_ARCH');
  });

  it('validates versions', () => {
    expect(parseKernelVersion('6.1')).toBe('6.1');
    expect(parseKernelVersion('v6.1.62')).toBe('6.1.62');
    for (const bad of ['6', '6.x', '6.1.2.3', 'latest', '6.1-rc1', ''])
      expect(
        code(() => parseKernelVersion(bad)),
        bad,
      ).toBe('INPUT_INVALID');
    expect(versionMatches('6.1', '6.1.192')).toBe(true);
    expect(versionMatches('6.1.19', '6.1.192')).toBe(false);
    expect(versionMatches('6.1.192', '6.1.192')).toBe(true);
  });

  it('reads the version from a Makefile', () => {
    expect(versionFromMakefile('VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = x\n')).toBe('6.1.192');
    expect(versionFromMakefile('VERSION = 6\nPATCHLEVEL = 2\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n')).toBe('6.2.0-rc3');
    expect(versionFromMakefile('all:\n')).toBeUndefined();
  });

  it('plans kernel.org downloads with the checksum list, local tarballs and URLs', () => {
    expect(kernelOrgUrl('6.1.62')).toBe('https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.62.tar.xz');
    expect(kernelOrgSumsUrl('5.15.1')).toBe('https://cdn.kernel.org/pub/linux/kernel/v5.x/sha256sums.asc');
    expect(planSource({ version: '6.1.62' })).toEqual({
      kind: 'url',
      location: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.62.tar.xz',
      compression: 'xz',
      sha256: undefined,
      sumsUrl: 'https://cdn.kernel.org/pub/linux/kernel/v6.x/sha256sums.asc',
      flags: { source: '--source', sha256: '--sha256' },
    });
    const sha = 'A'.repeat(64);
    expect(planSource({ version: '6.1.62', sha256: sha })).toMatchObject({ sha256: 'a'.repeat(64), sumsUrl: undefined });
    expect(planSource({ source: '/tmp/linux.tar.gz' })).toMatchObject({ kind: 'file', compression: 'gzip' });
    expect(planSource({ source: 'https://example.org/l.tar.xz?x=1' })).toMatchObject({ kind: 'url', compression: 'xz' });
    expect(code(() => planSource({ source: '/tmp/linux.zip' }))).toBe('INPUT_INVALID');
    expect(code(() => planSource({ source: '/tmp/l.tar.xz', sha256: 'abc' }))).toBe('INPUT_INVALID');
    expect(code(() => planSource({}))).toBe('USAGE');
  });

  it('finds a tarball checksum in sha256sums.asc', () => {
    const sums = `-----BEGIN PGP SIGNED MESSAGE-----\n${'1'.repeat(64)}  linux-6.1.61.tar.xz\n${'2'.repeat(64)}  linux-6.1.62.tar.xz\n`;
    expect(checksumFromSums(sums, 'linux-6.1.62.tar.xz')).toBe('2'.repeat(64));
    expect(checksumFromSums(sums, 'linux-6.1.6.tar.xz')).toBeUndefined();
  });
});
