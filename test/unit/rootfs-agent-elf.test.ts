import { describe, expect, it } from 'vitest';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkElfForArch, parseElf, readElf } from '../../rootfs-builder/index.js';
import { checkAgentFile } from '../../rootfs-builder/agent-source.js';

/** A minimal ELF64 header (+ optional PT_INTERP) for any machine and byte order. */
function elf64(machine: number, endian: 'little' | 'big', interp?: string, type = 2): Buffer {
  const buf = Buffer.alloc(0x200);
  buf.write('\x7fELF', 0, 'latin1');
  buf[4] = 2;
  buf[5] = endian === 'little' ? 1 : 2;
  buf[6] = 1;
  const le = endian === 'little';
  const w16 = (o: number, v: number) => (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const w32 = (o: number, v: number) => (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const w64 = (o: number, v: number) => (le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o));
  w16(16, type);
  w16(18, machine);
  w64(32, 64); // e_phoff
  w16(54, 56); // e_phentsize
  w16(56, interp ? 2 : 1);
  // PT_LOAD
  w32(64, 1);
  if (interp) {
    const ph = 64 + 56;
    w32(ph, 3); // PT_INTERP
    w64(ph + 8, 0x180);
    w64(ph + 32, interp.length + 1);
    buf.write(`${interp}\0`, 0x180, 'latin1');
  }
  return buf;
}

describe('ELF parsing', () => {
  it('reads the real static busybox and dynamic ls of this host', async () => {
    const bb = await readElf('/bin/busybox');
    expect(bb).toMatchObject({ class: 64, endian: 'little', machine: 62 });
    expect(bb!.interpreter).toBeUndefined();
    const ls = await readElf('/bin/ls');
    expect(ls!.interpreter).toBe('/lib64/ld-linux-x86-64.so.2');
  });

  it('recognises each target arch and refuses the others', () => {
    const cases = [
      { arch: 'x86_64', buf: elf64(62, 'little') },
      { arch: 'aarch64', buf: elf64(183, 'little') },
      { arch: 'ppc64le', buf: elf64(21, 'little') },
      { arch: 's390x', buf: elf64(22, 'big') },
    ] as const;
    for (const c of cases) {
      for (const target of ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const) {
        const fn = () => checkElfForArch(parseElf(c.buf), target, 'agent');
        if (target === c.arch) expect(fn()).toBeUndefined();
        else expect(fn).toThrow(expect.objectContaining({ code: 'AGENT_INVALID', message: expect.stringContaining(`but the rootfs is ${target}`) }));
      }
    }
    // big-endian ppc64 is not ppc64le
    expect(() => checkElfForArch(parseElf(elf64(21, 'big')), 'ppc64le', 'agent')).toThrow(/ppc64 \(big-endian\)/);
  });

  it('returns the interpreter of a dynamic binary; refuses non-executables and non-ELF', () => {
    expect(checkElfForArch(parseElf(elf64(62, 'little', '/lib/ld-musl-x86_64.so.1')), 'x86_64', 'agent')).toBe('/lib/ld-musl-x86_64.so.1');
    expect(() => checkElfForArch(parseElf(elf64(62, 'little', undefined, 1)), 'x86_64', 'agent')).toThrow(/not an executable/);
    expect(parseElf(Buffer.from('#!/bin/sh\necho hi\n'.padEnd(80)))).toBeUndefined();
    expect(() => checkElfForArch(undefined, 'x86_64', 'agent x')).toThrow(/agent x is not an ELF executable/);
  });

  it('checkAgentFile: missing file, script, wrong arch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-elf-'));
    await expect(checkAgentFile(join(dir, 'nope'), 'x86_64')).rejects.toMatchObject({ code: 'MISSING_AGENT' });
    await writeFile(join(dir, 'script'), '#!/bin/sh\nexit 0\n'.padEnd(100, ' '), { mode: 0o755 });
    await expect(checkAgentFile(join(dir, 'script'), 'x86_64')).rejects.toMatchObject({ code: 'AGENT_INVALID' });
    await writeFile(join(dir, 'arm'), elf64(183, 'little'), { mode: 0o755 });
    await expect(checkAgentFile(join(dir, 'arm'), 'x86_64')).rejects.toThrow(/built for aarch64 .* but the rootfs is x86_64/);
    await expect(checkAgentFile(dir, 'x86_64')).rejects.toMatchObject({ code: 'AGENT_INVALID' });
    expect(await checkAgentFile('/bin/busybox', 'x86_64')).toEqual({ path: '/bin/busybox', source: 'busybox' });
    // An x86_64 agent given for an aarch64 build names the machine it found.
    await expect(checkAgentFile('/bin/busybox', 'aarch64')).rejects.toThrow(/built for x86_64 \(64-bit little-endian\), but the rootfs is aarch64/);
    expect((await readFile('/bin/busybox')).length).toBeGreaterThan(0);
    await rm(dir, { recursive: true, force: true });
  });
});
