import { join } from 'node:path';
import { fileTree } from '../support/file-tree.js';
import { describe, expect, it } from 'vitest';
import { conjuncts, evalExpr, formatExpr, parseExpr, readKconfig, type ConfigValues } from '../../kernel/kconfig.js';
import { thrown } from '../support/errors.js';

const kconfigTree = (files: Record<string, string>): string => fileTree(files, 'osb-kconfig-');

const cfg = (o: Record<string, string>): ConfigValues => new Map(Object.entries(o));

describe('Kconfig expressions', () => {
  it('parses precedence (! over && over ||), comparisons, strings and macros', () => {
    expect(formatExpr(parseExpr('A || B && !C'))).toBe('A || B && !C');
    expect(formatExpr(parseExpr('(A || B) && C'))).toBe('(A || B) && C');
    expect(formatExpr(parseExpr('ARCH = "x86" && X != y'))).toBe('ARCH=x86 && X!=y');
    expect(parseExpr('$(cc-option,-mfoo)')).toEqual({ k: 'macro', text: '$(cc-option,-mfoo)' });
    expect(conjuncts(parseExpr('A && (B || C) && !D')).map((c) => formatExpr(c))).toEqual(['A', 'B || C', '!D']);
    expect(() => parseExpr('A &&')).toThrow(/cannot parse/);
    expect(() => parseExpr('(A')).toThrow(/missing \)/);
  });

  it('evaluates with tristate logic', () => {
    const c = cfg({ Y: 'y', M: 'm', N: 'n', NUM: '300', S: 'abc' });
    expect(evalExpr(parseExpr('Y && M'), c)).toBe(1);
    expect(evalExpr(parseExpr('M || N'), c)).toBe(1);
    expect(evalExpr(parseExpr('!M'), c)).toBe(1);
    expect(evalExpr(parseExpr('!Y'), c)).toBe(0);
    expect(evalExpr(parseExpr('ABSENT'), c)).toBe(0);
    expect(evalExpr(parseExpr('!ABSENT'), c)).toBe(2);
    expect(evalExpr(parseExpr('NUM > 256'), c)).toBe(2);
    expect(evalExpr(parseExpr('NUM < 0x100'), c)).toBe(0);
    expect(evalExpr(parseExpr('S = "abc"'), c)).toBe(2);
    expect(evalExpr(parseExpr('M = m'), c)).toBe(2);
    expect(evalExpr(parseExpr('ABSENT != n'), c)).toBe(0);
  });
});

describe('readKconfig', () => {
  const dir = kconfigTree({
    Kconfig: [
      'mainmenu "Test $(ARCH)"',
      'source "arch/$(SRCARCH)/Kconfig"',
      'source "fs/Kconfig"',
      'menu "Drivers"',
      '\tdepends on HAS_IOMEM',
      '\tvisible if EXPERT',
      'config DRV',
      '\ttristate "driver" if BLOCK \\',
      '\t\t&& PCI',
      '\tdepends on PCI',
      '\tselect CRC if NET',
      '\timply OPT',
      '\thelp',
      '\t  Help text mentioning config FAKE and',
      '',
      '\t  source "does/not/exist"',
      'endmenu',
      'choice',
      '\tprompt "pick"',
      '\tdepends on PCI',
      'config PICK_A',
      '\tbool "a"',
      'config PICK_B',
      '\tbool "b"',
      'endchoice',
      'config CRC',
      '\ttristate',
      'config NR',
      '\tint "n" # trailing comment',
      '\trange 2 64 if SMP',
      '\tdefault 8',
      'comment "a comment"',
      '\tdepends on PCI',
      'config HAS_IOMEM',
      '\tdef_bool y',
      'macro := $(shell,true)',
      '',
    ].join('\n'),
    'arch/x86/Kconfig':
      'config X86\n\tdef_bool y\n\tselect PCI\nconfig 64BIT\n\tbool "64-bit kernel" if "$(ARCH)" = "x86"\n\tdefault "$(ARCH)" != "i386"\nconfig PCI\n\tbool\n',
    'fs/Kconfig': 'if BLOCK\nmenuconfig EXT4\n\ttristate "ext4"\nrsource "sub/Kconfig"\nendif\nconfig BLOCK\n\tbool "block"\n',
    'fs/sub/Kconfig': 'config SUB\n\tbool "sub"\n\tdepends on EXT4\n',
  });
  const tree = readKconfig(dir, { srcarch: 'x86', arch: 'x86_64' });

  it('follows source/rsource with $(SRCARCH) and skips help text and macro lines', () => {
    expect([...tree.symbols.keys()].sort()).toEqual(
      ['64BIT', 'BLOCK', 'CRC', 'DRV', 'EXT4', 'HAS_IOMEM', 'NR', 'PCI', 'PICK_A', 'PICK_B', 'SUB', 'X86'].sort(),
    );
    expect(tree.paths).toEqual(['Kconfig', 'arch/x86/Kconfig', 'fs/Kconfig', 'fs/sub/Kconfig']);
    expect(tree.symbols.has('FAKE')).toBe(false);
  });

  it('records own and inherited dependencies with their origin and location', () => {
    const drv = tree.symbols.get('DRV')![0]!;
    expect(drv.type).toBe('tristate');
    expect(drv.deps.map((d) => `${d.origin}:${formatExpr(d.expr)}@${d.line}`)).toEqual(['menu:HAS_IOMEM@5', 'depends on:PCI@10']);
    expect(drv.visibleIf.map((d) => formatExpr(d.expr))).toEqual(['EXPERT']);
    expect(drv.menus).toEqual(['Drivers']);
    expect(drv.prompts[0]!.text).toBe('driver');
    expect(formatExpr(drv.prompts[0]!.cond!)).toBe('BLOCK && PCI');
    const sub = tree.symbols.get('SUB')![0]!;
    expect(sub.file).toBe('fs/sub/Kconfig');
    expect(sub.deps.map((d) => `${d.origin}:${formatExpr(d.expr)}:${d.file}`)).toEqual(['if:BLOCK:fs/Kconfig', 'depends on:EXT4:fs/sub/Kconfig']);
  });

  it('records selects/implies as reverse dependencies, choices, ranges and substituted $(ARCH)', () => {
    expect(tree.reverse.get('CRC')).toMatchObject([{ by: 'DRV', kind: 'select' }]);
    expect(formatExpr(tree.reverse.get('CRC')![0]!.cond!)).toBe('NET');
    expect(tree.reverse.get('OPT')).toMatchObject([{ by: 'DRV', kind: 'imply' }]);
    expect(tree.reverse.get('PCI')).toMatchObject([{ by: 'X86', kind: 'select' }]);
    expect(tree.symbols.get('PICK_B')![0]!.choice).toEqual({ file: 'Kconfig', line: 18 });
    expect(tree.symbols.get('PICK_B')![0]!.deps.map((d) => d.origin)).toEqual(['choice']);
    expect(tree.symbols.get('NR')![0]!.ranges).toHaveLength(1);
    const b64 = tree.symbols.get('64BIT')![0]!;
    expect(evalExpr(b64.prompts[0]!.cond!, new Map())).toBe(0); // "x86_64" = "x86"
    expect(tree.symbols.get('CRC')![0]!.prompts).toEqual([]);
  });

  it('fails clearly on a missing sourced file and unbalanced blocks', () => {
    const bad = kconfigTree({ Kconfig: 'source "nope/Kconfig"\n' });
    expect(() => readKconfig(bad, { srcarch: 'x86' })).toThrow(/nope\/Kconfig/);
    const opt = kconfigTree({ Kconfig: 'osource "nope/Kconfig"\nconfig A\n\tbool "a"\n' });
    expect(readKconfig(opt, { srcarch: 'x86' }).symbols.has('A')).toBe(true);
    const unbalanced = kconfigTree({ Kconfig: 'if A\nconfig B\n\tbool "b"\nendmenu\n' });
    expect(() => readKconfig(unbalanced, { srcarch: 'x86' })).toThrow(/endmenu without matching menu/);
  });

  // Counterexamples found by parsers-property: each escaped as a bare Error, a TypeError or a RangeError.
  const refusal = (fn: () => unknown, message: RegExp) =>
    expect(thrown(fn)).toMatchObject({ code: 'KERNEL_CONFIG', message: expect.stringMatching(message), hint: expect.stringMatching(/kernel source tree/) });

  it('refuses bad input with KERNEL_CONFIG, located at the Kconfig line', () => {
    refusal(() => parseExpr(''), /cannot parse Kconfig expression "": unexpected end/);
    refusal(
      () => readKconfig(kconfigTree({ Kconfig: 'config A\n\tbool "a"\nsource "arch/$(SR' }), { srcarch: 'x86' }),
      /^Kconfig Kconfig:3: sourced Kconfig file "arch\/\$\(SR does not exist in /,
    );
    refusal(() => readKconfig(kconfigTree({ Kconfig: 'config A\n\tdepends on B &&\n' }), { srcarch: 'x86' }), /^Kconfig Kconfig:2: cannot parse/);
    refusal(() => readKconfig(kconfigTree({ Kconfig: 'if A\nendmenu\n' }), { srcarch: 'x86' }), /^Kconfig Kconfig:2: endmenu without matching menu/);
  });

  it('a sourced directory is KERNEL_CONFIG (was EISDIR)', () => {
    refusal(() => readKconfig(kconfigTree({ Kconfig: 'source "."\n' }), { srcarch: 'x86' }), /Kconfig file \. cannot be read: EISDIR/);
  });

  it('a line break other than \\n inside a line is read, not a TypeError', () => {
    const tree = readKconfig(kconfigTree({ Kconfig: 'config A\n\tbool "a\rb"\nconfig B\n\tprompt "x\u2028y"\n' }), { srcarch: 'x86' });
    expect(tree.symbols.get('A')![0]!.prompts[0]!.text).toBe('a\rb');
    expect(tree.symbols.get('B')![0]!.prompts[0]!.text).toBe('x\u2028y');
  });

  it('a deeply nested expression is KERNEL_CONFIG, not a stack overflow', () => {
    refusal(() => parseExpr(`${'!'.repeat(100_000)}A`), /more than 1000 tokens/);
    refusal(() => parseExpr(`${'('.repeat(50_000)}A${')'.repeat(50_000)}`), /more than 1000 tokens/);
  });
});
