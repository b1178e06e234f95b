/** Architectures: Kata's -a names and what the kernel build calls them (build-kernel.sh arch_to_kernel). */
import { arch as hostArch } from 'node:os';
import { OsbuilderError } from '../core/errors.js';

export type Arch = 'x86_64' | 'aarch64' | 'ppc64le' | 's390x';

export interface ArchInfo {
  /** make ARCH= (Kata passes x86_64, arm64, powerpc, s390). */
  kernelArch: string;
  /** arch/<srcarch>/ in the tree. */
  srcarch: string;
  /** kernel/fragments/<dir>. */
  fragmentDir: string;
  /** make targets for the boot images. */
  targets: string[];
  /** Compressed image installed as vmlinuz-…, relative to the tree. */
  vmlinuz: string;
  /** Uncompressed image installed as vmlinux-…. */
  vmlinux: string;
  /** gcc cross prefix when the host differs; Debian package providing it. */
  crossPrefix: string;
  crossPackage: string;
  /** Debian architecture name (for builder packages). */
  debArch: string;
}

export const ARCHES: Record<Arch, ArchInfo> = {
  x86_64: { kernelArch: 'x86_64', srcarch: 'x86', fragmentDir: 'x86_64', targets: ['bzImage'], vmlinuz: 'arch/x86/boot/bzImage', vmlinux: 'vmlinux', crossPrefix: 'x86_64-linux-gnu-', crossPackage: 'gcc-x86-64-linux-gnu', debArch: 'amd64' },
  aarch64: { kernelArch: 'arm64', srcarch: 'arm64', fragmentDir: 'arm64', targets: ['Image', 'Image.gz'], vmlinuz: 'arch/arm64/boot/Image.gz', vmlinux: 'arch/arm64/boot/Image', crossPrefix: 'aarch64-linux-gnu-', crossPackage: 'gcc-aarch64-linux-gnu', debArch: 'arm64' },
  ppc64le: { kernelArch: 'powerpc', srcarch: 'powerpc', fragmentDir: 'ppc64le', targets: ['vmlinux'], vmlinuz: 'vmlinux', vmlinux: 'vmlinux', crossPrefix: 'powerpc64le-linux-gnu-', crossPackage: 'gcc-powerpc64le-linux-gnu', debArch: 'ppc64el' },
  s390x: { kernelArch: 's390', srcarch: 's390', fragmentDir: 's390', targets: ['bzImage'], vmlinuz: 'arch/s390/boot/bzImage', vmlinux: 'arch/s390/boot/vmlinux', crossPrefix: 's390x-linux-gnu-', crossPackage: 'gcc-s390x-linux-gnu', debArch: 's390x' },
};

const ALIASES: Record<string, Arch> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
  ppc64le: 'ppc64le',
  ppc64el: 'ppc64le',
  powerpc: 'ppc64le',
  s390x: 's390x',
  s390: 's390x',
};

export function parseArch(name: string | undefined): Arch {
  if (name === undefined || name === '') return hostArchName();
  const a = ALIASES[name];
  if (!a) {
    throw new OsbuilderError('UNSUPPORTED_ARCH', `unknown architecture ${JSON.stringify(name)}`, `use one of ${Object.keys(ARCHES).join(', ')}`);
  }
  return a;
}

export function hostArchName(): Arch {
  const m: Record<string, Arch> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x' };
  return m[hostArch()] ?? 'x86_64';
}

/** CROSS_COMPILE prefix, or undefined when building natively. */
export function crossCompile(arch: Arch): string | undefined {
  return arch === hostArchName() ? undefined : ARCHES[arch].crossPrefix;
}
