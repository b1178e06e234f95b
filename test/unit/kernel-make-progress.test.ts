import { describe, expect, it, vi } from 'vitest';
import { configureLog, progress } from '../../core/log.js';
import { expectedTotal, formatProgress, isCompileLine, MakeProgressCounter, progressKey, progressOf, recordCount } from '../../kernel/make-progress.js';

// Real kbuild output (make -j2 ARCH=x86_64 bzImage vmlinux, Linux 6.1), quiet mode.
const KBUILD = [
  '  SYNC    include/config/auto.conf.cmd',
  '  HOSTCC  scripts/basic/fixdep',
  '  WRAP    arch/x86/include/generated/uapi/asm/bpf_perf_event.h',
  '  CC      scripts/mod/empty.o',
  '  HOSTCXX scripts/kconfig/qconf.o',
  '  AS      arch/x86/entry/entry_64.o',
  '  CC [M]  fs/fuse/virtio_fs.o',
  '  AR      fs/ext4/built-in.a',
  '  LD      vmlinux.o',
  "make[2]: Nothing to be done for 'all'.",
  '  CHK     include/generated/compile.h',
  'fs/ext4/super.c:12:5: warning:   CC this is not a kbuild line',
  '  OBJCOPY arch/x86/boot/setup.bin',
  'Kernel: arch/x86/boot/bzImage is ready  (#1)',
];

describe('make progress', () => {
  it('counts only kbuild compile lines (CC, CC [M], AS, HOSTCC, HOSTCXX)', () => {
    expect(KBUILD.filter(isCompileLine)).toEqual([
      '  HOSTCC  scripts/basic/fixdep',
      '  CC      scripts/mod/empty.o',
      '  HOSTCXX scripts/kconfig/qconf.o',
      '  AS      arch/x86/entry/entry_64.o',
      '  CC [M]  fs/fuse/virtio_fs.o',
    ]);
  });

  it('counts lines split across chunks anywhere, and a last line without a newline', () => {
    const text = KBUILD.join('\n');
    for (const cut of [1, 3, 7, 50]) {
      const c = new MakeProgressCounter();
      for (let i = 0; i < text.length; i += cut) c.feed(text.slice(i, i + cut));
      expect(c.end().compiled).toBe(5);
    }
    const crlf = new MakeProgressCounter();
    crlf.feed('  CC      a.o\r\n  CC      b.o');
    expect(crlf.end()).toEqual({ compiled: 2 });
  });

  it('reports when the percentage moves (with a total), every N files without', () => {
    const withTotal = new MakeProgressCounter(200);
    const reports = [];
    for (let i = 0; i < 200; i++) reports.push(withTotal.feed(`  CC      f${i}.o\n`));
    const given = reports.filter((r) => r !== undefined);
    expect(given).toHaveLength(100);
    expect(given[0]).toEqual({ compiled: 1, total: 200, percent: 0 });
    expect(given.at(-1)).toEqual({ compiled: 198, total: 200, percent: 99 });
    expect(withTotal.end()).toEqual({ compiled: 200, total: 200, percent: 99 });

    const without = new MakeProgressCounter(undefined, 10);
    const seen = [];
    for (let i = 0; i < 35; i++) seen.push(without.feed(`  CC      f${i}.o\n  LD      x\n`));
    expect(seen.filter(Boolean).map((r) => r!.compiled)).toEqual([1, 10, 20, 30]);
    expect(without.feed('  AR      nothing\n')).toBeUndefined();
  });

  it('caps the percentage at 99 until make ends, and at the total when more files compiled', () => {
    expect(progressOf(5000, 4000)).toEqual({ compiled: 5000, total: 4000, percent: 99 });
    expect(progressOf(0, 0)).toEqual({ compiled: 0 });
    expect(formatProgress(progressOf(5000, 4000))).toBe('4000/4000 files compiled (99%)');
    expect(formatProgress({ compiled: 1234, total: 3456, percent: 35 })).toBe('1234/3456 files compiled (35%)');
    expect(formatProgress({ compiled: 1 })).toBe('1 file compiled');
    expect(formatProgress({ compiled: 12 })).toBe('12 files compiled');
  });

  it('takes the total from a full build of the same config and targets, never for an already built tree', () => {
    const key = progressKey('ab'.repeat(32), 'bzImage vmlinux');
    expect(key).toBe('abababababababab:bzImage vmlinux');
    expect(expectedTotal({ [key]: 3000 }, key, false)).toBe(3000);
    expect(expectedTotal({ [key]: 3000 }, key, true)).toBeUndefined();
    expect(expectedTotal({}, key, false)).toBeUndefined();
    expect(expectedTotal({ [key]: -1 }, key, false)).toBeUndefined();
  });

  it('records the largest count (an incremental run never lowers it), keeping a bounded number of keys', () => {
    expect(recordCount({ a: 3000 }, 'a', 12)).toEqual({ a: 3000 });
    expect(recordCount({ a: 3000 }, 'b', 2500)).toEqual({ a: 3000, b: 2500 });
    const many = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`k${i}`, i + 1]));
    const kept = recordCount(many, 'new', 9, 64);
    expect(Object.keys(kept)).toHaveLength(64);
    expect(kept.new).toBe(9);
    expect(kept.k69).toBe(70);
    expect(kept.k0).toBeUndefined();
  });
});

describe('progress events', () => {
  it('--json: one event line on stderr per report, nothing on stdout; human mode without a TTY spinner prints nothing', () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      configureLog({ json: true });
      progress('make bzImage vmlinux (-j2, native)', { done: 1234, total: 3456, percent: 35, unit: 'files', text: '1234/3456 files compiled (35%)' });
      progress('make bzImage vmlinux (-j2, native)', { done: 12, unit: 'files', text: '12 files compiled' });
      configureLog({ json: false });
      progress('make bzImage vmlinux (-j2, native)', { done: 13, unit: 'files', text: '13 files compiled' });
      const lines = err.mock.calls.map((c) => String(c[0]));
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        {
          event: 'progress',
          step: 'make bzImage vmlinux (-j2, native)',
          done: 1234,
          total: 3456,
          percent: 35,
          unit: 'files',
          text: '1234/3456 files compiled (35%)',
        },
        { event: 'progress', step: 'make bzImage vmlinux (-j2, native)', done: 12, unit: 'files', text: '12 files compiled' },
      ]);
      expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
      expect(out).not.toHaveBeenCalled();
    } finally {
      configureLog({ json: false });
      err.mockRestore();
      out.mockRestore();
    }
  });
});
