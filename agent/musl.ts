/**
 * musl for cross builds. Debian ships musl-gcc (a gcc wrapper with a specs
 * file) for the host arch only; musl-dev:<arch> gives the target's headers and
 * libc.a, and this specs file points Debian's cross gcc at them, as musl-gcc
 * does natively.
 */
import type { Arch } from '../core/arch.js';
import { existsSync } from 'node:fs';

export type MuslArch = Extract<Arch, 'x86_64' | 'aarch64'>;

/** Arches whose musl-dev Debian ships for bookworm (the ones we use musl on). */
export function isMuslArch(arch: string): arch is MuslArch {
  return arch === 'x86_64' || arch === 'aarch64';
}

export function muslTriplet(arch: MuslArch): string {
  return `${arch}-linux-musl`;
}

/** The target's musl headers and libc.a are installed (musl-dev:<arch>). */
export function muslInstalled(arch: MuslArch): boolean {
  const t = muslTriplet(arch);
  return existsSync(`/usr/include/${t}/stdio.h`) && existsSync(`/usr/lib/${t}/libc.a`);
}

/** gcc specs that swap glibc for musl: headers, start files, libc (static links only). */
export function muslSpecs(arch: MuslArch): string {
  const t = muslTriplet(arch);
  return [
    '%rename cpp_options old_cpp_options',
    '',
    '*cpp_options:',
    `-nostdinc -isystem /usr/include/${t} -isystem include%s %(old_cpp_options)`,
    '',
    '*cc1:',
    `%(cc1_cpu) -nostdinc -isystem /usr/include/${t} -isystem include%s`,
    '',
    '*link_libgcc:',
    `-L/usr/lib/${t} -L .%s`,
    '',
    '*libgcc:',
    'libgcc.a%s %:if-exists(libgcc_eh.a%s)',
    '',
    '*startfile:',
    `/usr/lib/${t}/crt1.o /usr/lib/${t}/crti.o crtbeginT.o%s`,
    '',
    '*endfile:',
    `crtend.o%s /usr/lib/${t}/crtn.o`,
    '',
    '*link:',
    '-nostdlib -static',
    '',
  ].join('\n');
}
