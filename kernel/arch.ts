/** What the kernel build needs per arch beyond core/arch.ts: fragment folder, make targets, installed images (build-kernel.sh). */
import type { Arch } from '../core/arch.js';

export interface KernelArchInfo {
  /** kernel/fragments/<dir>. */
  fragmentDir: string;
  /** make targets for the boot images. */
  targets: string[];
  /** Compressed image installed as vmlinuz-…, relative to the tree. */
  vmlinuz: string;
  /** Uncompressed image installed as vmlinux-…. */
  vmlinux: string;
}

export const KERNEL_ARCH: Record<Arch, KernelArchInfo> = {
  x86_64: { fragmentDir: 'x86_64', targets: ['bzImage'], vmlinuz: 'arch/x86/boot/bzImage', vmlinux: 'vmlinux' },
  aarch64: { fragmentDir: 'arm64', targets: ['Image', 'Image.gz'], vmlinuz: 'arch/arm64/boot/Image.gz', vmlinux: 'arch/arm64/boot/Image' },
  ppc64le: { fragmentDir: 'ppc64le', targets: ['vmlinux'], vmlinuz: 'vmlinux', vmlinux: 'vmlinux' },
  s390x: { fragmentDir: 's390', targets: ['bzImage'], vmlinuz: 'arch/s390/boot/bzImage', vmlinux: 'arch/s390/boot/vmlinux' },
};
