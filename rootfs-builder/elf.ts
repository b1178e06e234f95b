/**
 * Just enough ELF (see elf(5)) to tell whether a binary can run in a guest:
 * class, byte order, e_machine, type, and the PT_INTERP path when dynamic.
 */
import { open } from 'node:fs/promises';
import { OsbuilderError } from '../core/errors.js';
import { ARCH_FACTS, type Arch } from '../core/arch.js';

export interface ElfInfo {
  class: 32 | 64;
  endian: 'little' | 'big';
  machine: number;
  type: number;
  /** PT_INTERP contents (the dynamic loader), undefined for static binaries. */
  interpreter?: string;
}

const ET_EXEC = 2;
const ET_DYN = 3;
const PT_INTERP = 3;

const MACHINE_NAMES: Record<number, string> = {
  3: 'i386',
  8: 'mips',
  20: 'ppc',
  21: 'ppc64',
  22: 's390',
  40: 'arm',
  62: 'x86_64',
  183: 'aarch64',
  243: 'riscv',
};

export function machineName(machine: number, endian?: 'little' | 'big'): string {
  const base = MACHINE_NAMES[machine] ?? `e_machine ${machine}`;
  if (machine === 21 && endian) return endian === 'little' ? 'ppc64le' : 'ppc64 (big-endian)';
  return base;
}

/** Parses an ELF header and program headers from the file's first bytes; undefined when not ELF. */
export function parseElf(buf: Buffer): ElfInfo | undefined {
  if (buf.length < 52 || buf[0] !== 0x7f || buf.toString('latin1', 1, 4) !== 'ELF') return undefined;
  const cls = buf[4] === 1 ? 32 : buf[4] === 2 ? 64 : undefined;
  const endian = buf[5] === 1 ? 'little' : buf[5] === 2 ? 'big' : undefined;
  if (!cls || !endian) return undefined;
  const le = endian === 'little';
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const u64 = (o: number) => Number(le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o));
  if (cls === 64 && buf.length < 64) return undefined;
  const type = u16(16);
  const machine = u16(18);
  const phoff = cls === 64 ? u64(32) : u32(28);
  const phentsize = cls === 64 ? u16(54) : u16(42);
  const phnum = cls === 64 ? u16(56) : u16(44);
  const info: ElfInfo = { class: cls, endian, machine, type };
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + (cls === 64 ? 56 : 32) > buf.length) break;
    if (u32(off) !== PT_INTERP) continue;
    const pOffset = cls === 64 ? u64(off + 8) : u32(off + 4);
    const pFilesz = cls === 64 ? u64(off + 32) : u32(off + 16);
    if (pOffset + pFilesz <= buf.length) {
      info.interpreter = buf.toString('latin1', pOffset, pOffset + pFilesz).replace(/\0+$/, '');
    } else {
      info.interpreter = '';
    }
  }
  return info;
}

/** Reads enough of `path` for parseElf (headers plus PT_INTERP, which sits near the start). */
export async function readElf(path: string): Promise<ElfInfo | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return parseElf(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/**
 * Checks that `info` is an executable for `arch`. Returns the interpreter the
 * rootfs must provide (undefined for a static binary).
 */
export function checkElfForArch(info: ElfInfo | undefined, arch: Arch, what: string): string | undefined {
  if (!info) {
    throw new OsbuilderError(
      'AGENT_INVALID',
      `${what} is not an ELF executable`,
      'give the compiled agent binary (--agent or AGENT_SOURCE_BIN), not a script or an archive',
    );
  }
  const want = ARCH_FACTS[arch];
  if (info.machine !== want.elfMachine || info.class !== 64 || info.endian !== want.endian) {
    throw new OsbuilderError(
      'AGENT_INVALID',
      `${what} is built for ${machineName(info.machine, info.endian)} (${info.class}-bit ${info.endian}-endian), but the rootfs is ${arch}`,
      `build the agent for ${arch}, or build the rootfs with --arch matching the agent`,
    );
  }
  if (info.type !== ET_EXEC && info.type !== ET_DYN) {
    throw new OsbuilderError('AGENT_INVALID', `${what} is an ELF object of type ${info.type}, not an executable`, 'give the linked agent executable');
  }
  return info.interpreter;
}
