/**
 * What the test suite proves per (distro, arch, format): "booted" pairs are
 * built for real and boot-tested with the container proof (test/integration:
 * rootfs-downstream, build, rootfs-aarch64, rootfs-aarch64-debian); "built" ones would be built for
 * real and checked, not booted; everything else is "rendered": its Dockerfile and
 * plan are unit-tested (Debian's archive is the only mirror CI can reach).
 */
import type { Arch } from '../core/arch.js';

export type Format = 'image' | 'initrd';
export type Coverage = 'booted' | 'built' | 'rendered';
type Tested = Exclude<Coverage, 'rendered'>;

const TESTED: Readonly<Record<string, Partial<Record<Arch, Partial<Record<Format, Tested>>>>>> = {
  debian: { x86_64: { image: 'booted', initrd: 'booted' }, aarch64: { image: 'booted' } },
  busybox: { x86_64: { initrd: 'booted' }, aarch64: { image: 'booted', initrd: 'booted' } },
};

export function coverage(distro: string, arch: Arch, format: Format): Coverage {
  return TESTED[distro]?.[arch]?.[format] ?? 'rendered';
}

/** The (arch, formats) pairs of one distro the tests take to `level` ([] = none). */
export function testedIn(distro: string, level: Tested): Array<{ arch: Arch; formats: Format[] }> {
  return Object.entries(TESTED[distro] ?? {})
    .map(([arch, formats]) => ({
      arch: arch as Arch,
      formats: (Object.entries(formats ?? {}) as Array<[Format, Tested]>).filter(([, l]) => l === level).map(([f]) => f),
    }))
    .filter((e) => e.formats.length > 0);
}
