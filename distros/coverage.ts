/**
 * What the test suite proves per (distro, arch, format): "booted" pairs are
 * built for real and boot-tested with the container proof (test/integration:
 * rootfs-downstream, build); everything else is "rendered": its Dockerfile and
 * plan are unit-tested (Debian's archive is the only mirror CI can reach).
 */
import type { Arch } from '../core/arch.js';

export type Format = 'image' | 'initrd';
export type Coverage = 'booted' | 'rendered';

const BOOTED: Readonly<Record<string, Partial<Record<Arch, readonly Format[]>>>> = {
  debian: { x86_64: ['image', 'initrd'] },
  busybox: { x86_64: ['initrd'] },
};

export function coverage(distro: string, arch: Arch, format: Format): Coverage {
  return BOOTED[distro]?.[arch]?.includes(format) ? 'booted' : 'rendered';
}

/** "x86_64: image initrd" lines for one distro ([] = rendered only). */
export function bootedIn(distro: string): Array<{ arch: Arch; formats: Format[] }> {
  return Object.entries(BOOTED[distro] ?? {}).map(([arch, formats]) => ({ arch: arch as Arch, formats: [...(formats ?? [])] }));
}
