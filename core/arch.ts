/** The architectures osbuilder builds for, the names users may type, and each one's facts. */
import { OsbuilderError } from './errors.js';

/** As `uname -m` prints them (Kata's ARCH and build-kernel.sh -a). */
export const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
export type Arch = (typeof ARCHES)[number];

/** The arches osbuilder boots (others are built, not booted). */
export const GUEST_ARCHES = ['x86_64', 'aarch64'] as const satisfies readonly Arch[];
export type GuestArch = (typeof GUEST_ARCHES)[number];
export const isGuestArch = (a: Arch): a is GuestArch => (GUEST_ARCHES as readonly Arch[]).includes(a);

/** Names users may type for an arch (Debian, Go and kernel spellings), mapped to ours. */
export const ARCH_ALIASES: Readonly<Record<string, Arch>> = {
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

export interface ArchFacts {
  /** make ARCH= (build-kernel.sh arch_to_kernel: x86_64, arm64, powerpc, s390). */
  kernelArch: string;
  /** arch/<srcarch>/ in the kernel tree. */
  srcarch: string;
  /** dpkg architecture. */
  debArch: string;
  /** docker/podman --platform. */
  ociPlatform: string;
  /** QEMU system emulator and Kata's machine type for it. */
  qemuSystem: string;
  qemuMachine: string;
  /** qemu-user binary (Debian's qemu-user-static). */
  qemuUser: string;
  /** ELF e_machine, its elf.h name and byte order. */
  elfMachine: number;
  elfName: string;
  endian: 'little' | 'big';
  /** GNU triplet; cross tools are `<triplet>-gcc`, from Debian's gcc-<triplet with _ as ->. */
  triplet: string;
  crossPrefix: string;
  crossPackage: string;
}

export const ARCH_FACTS: Readonly<Record<Arch, ArchFacts>> = {
  x86_64: {
    kernelArch: 'x86_64',
    srcarch: 'x86',
    debArch: 'amd64',
    ociPlatform: 'linux/amd64',
    qemuSystem: 'qemu-system-x86_64',
    qemuMachine: 'q35',
    qemuUser: 'qemu-x86_64-static',
    elfMachine: 62,
    elfName: 'EM_X86_64',
    endian: 'little',
    triplet: 'x86_64-linux-gnu',
    crossPrefix: 'x86_64-linux-gnu-',
    crossPackage: 'gcc-x86-64-linux-gnu',
  },
  aarch64: {
    kernelArch: 'arm64',
    srcarch: 'arm64',
    debArch: 'arm64',
    ociPlatform: 'linux/arm64',
    qemuSystem: 'qemu-system-aarch64',
    qemuMachine: 'virt',
    qemuUser: 'qemu-aarch64-static',
    elfMachine: 183,
    elfName: 'EM_AARCH64',
    endian: 'little',
    triplet: 'aarch64-linux-gnu',
    crossPrefix: 'aarch64-linux-gnu-',
    crossPackage: 'gcc-aarch64-linux-gnu',
  },
  ppc64le: {
    kernelArch: 'powerpc',
    srcarch: 'powerpc',
    debArch: 'ppc64el',
    ociPlatform: 'linux/ppc64le',
    qemuSystem: 'qemu-system-ppc64',
    qemuMachine: 'pseries',
    qemuUser: 'qemu-ppc64le-static',
    elfMachine: 21,
    elfName: 'EM_PPC64',
    endian: 'little',
    triplet: 'powerpc64le-linux-gnu',
    crossPrefix: 'powerpc64le-linux-gnu-',
    crossPackage: 'gcc-powerpc64le-linux-gnu',
  },
  s390x: {
    kernelArch: 's390',
    srcarch: 's390',
    debArch: 's390x',
    ociPlatform: 'linux/s390x',
    qemuSystem: 'qemu-system-s390x',
    qemuMachine: 's390-ccw-virtio',
    qemuUser: 'qemu-s390x-static',
    elfMachine: 22,
    elfName: 'EM_S390',
    endian: 'big',
    triplet: 's390x-linux-gnu',
    crossPrefix: 's390x-linux-gnu-',
    crossPackage: 'gcc-s390x-linux-gnu',
  },
};

/** One of ARCHES or an alias; anything else is UNSUPPORTED_ARCH naming the valid ones. */
export function parseArch(name: string): Arch {
  const a = Object.hasOwn(ARCH_ALIASES, name) ? ARCH_ALIASES[name] : undefined;
  if (!a) {
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `unknown architecture ${JSON.stringify(name)}; supported: ${ARCHES.join(', ')}`,
      `use one of ${ARCHES.join(', ')}`,
    );
  }
  return a;
}

/** The arch this process runs on (Node's process.arch spelling in). */
export function hostArch(nodeArch: string = process.arch): Arch {
  const map: Record<string, Arch> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64le', s390x: 's390x' };
  const a = map[nodeArch];
  if (!a) throw new OsbuilderError('UNSUPPORTED_ARCH', `osbuilder does not run on ${nodeArch}`, `supported hosts: ${ARCHES.join(', ')}`);
  return a;
}

/** CROSS_COMPILE prefix for `arch` on this host, or undefined when native. */
export function crossCompile(arch: Arch, host: Arch = hostArch()): string | undefined {
  return arch === host ? undefined : ARCH_FACTS[arch].crossPrefix;
}
