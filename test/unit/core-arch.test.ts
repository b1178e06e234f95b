import { describe, expect, it } from 'vitest';
import { ARCHES, ARCH_ALIASES, ARCH_FACTS, crossCompile, hostArch, parseArch } from '../../core/arch.js';
import { OsbuilderError } from '../../core/errors.js';

function failure(f: () => unknown): OsbuilderError {
  try {
    f();
  } catch (e) {
    if (e instanceof OsbuilderError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('core/arch', () => {
  it('maps every alias (Debian, Go, kernel spellings) to one of ARCHES', () => {
    expect(['amd64', 'arm64', 'ppc64el', 'powerpc', 's390'].map(parseArch)).toEqual(['x86_64', 'aarch64', 'ppc64le', 'ppc64le', 's390x']);
    for (const a of ARCHES) expect(parseArch(a)).toBe(a);
    for (const v of Object.values(ARCH_ALIASES)) expect(ARCHES).toContain(v);
  });

  it('refuses riscv64, a typo and prototype keys with UNSUPPORTED_ARCH naming the valid arches', () => {
    for (const bad of ['riscv64', 'aarch46', 'toString', '']) {
      const e = failure(() => parseArch(bad));
      expect(e.code).toBe('UNSUPPORTED_ARCH');
      expect(e.message).toBe(`unknown architecture ${JSON.stringify(bad)}; supported: x86_64, aarch64, ppc64le, s390x`);
      expect(e.hint).toBe('use one of x86_64, aarch64, ppc64le, s390x');
    }
  });

  it("holds Kata's and Debian's names per arch", () => {
    expect(ARCH_FACTS.aarch64).toMatchObject({
      kernelArch: 'arm64',
      debArch: 'arm64',
      ociPlatform: 'linux/arm64',
      qemuSystem: 'qemu-system-aarch64',
      qemuMachine: 'virt',
      elfMachine: 183,
      crossPrefix: 'aarch64-linux-gnu-',
      crossPackage: 'gcc-aarch64-linux-gnu',
    });
    expect(ARCH_FACTS.x86_64).toMatchObject({ kernelArch: 'x86_64', srcarch: 'x86', debArch: 'amd64', qemuMachine: 'q35', elfMachine: 62 });
    expect(ARCH_FACTS.ppc64le).toMatchObject({
      kernelArch: 'powerpc',
      debArch: 'ppc64el',
      qemuSystem: 'qemu-system-ppc64',
      qemuMachine: 'pseries',
      elfMachine: 21,
    });
    expect(ARCH_FACTS.s390x).toMatchObject({ kernelArch: 's390', endian: 'big', qemuMachine: 's390-ccw-virtio', elfMachine: 22 });
    for (const a of ARCHES) expect(ARCH_FACTS[a].crossPrefix).toBe(`${ARCH_FACTS[a].triplet}-`);
  });

  it('knows the host from Node and cross-compiles only for another arch', () => {
    expect(hostArch('x64')).toBe('x86_64');
    expect(hostArch('arm64')).toBe('aarch64');
    expect(failure(() => hostArch('ia32')).message).toMatch(/does not run on ia32/);
    expect(crossCompile('x86_64', 'x86_64')).toBeUndefined();
    expect(crossCompile('aarch64', 'x86_64')).toBe('aarch64-linux-gnu-');
  });
});
