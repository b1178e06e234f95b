import { join } from 'node:path';
import { fileTree } from '../support/file-tree.js';
import { describe, expect, it } from 'vitest';
import { readKconfig } from '../../kernel/kconfig.js';
import { mergeFragments, parseFragment, parseIgnoreList } from '../../kernel/fragments.js';
import { assertVerified, parseDotConfig, verifyConfig, formatOption } from '../../kernel/verify.js';
import { mergeOntoBase, configMakeArgv } from '../../kernel/assemble.js';
import { OsbuilderError } from '../../core/errors.js';

const tree = (files: Record<string, string>): string => fileTree(files, 'osb-verify-');

// Shapes copied from Linux 6.1's real Kconfig entries (simplified to what matters here).
const KCONFIG = tree({
  Kconfig: ['source "init/Kconfig"', 'source "arch/$(SRCARCH)/Kconfig"', 'source "drivers/Kconfig"', 'source "fs/Kconfig"', ''].join('\n'),
  'init/Kconfig': [
    'config EXPERT',
    '\tbool "expert"',
    'config MODULES',
    '\tbool "modules"',
    'config MULTIUSER',
    '\tbool "Multiple users" if EXPERT',
    '\tdefault y',
    'config BLOCK',
    '\tbool "Enable the block layer" if EXPERT',
    '\tdefault y',
    'config NR_CPUS',
    '\tint "cpus"',
    '\trange 2 512',
    '\tdefault 64',
    '',
  ].join('\n'),
  'arch/x86/Kconfig': [
    'config X86',
    '\tdef_bool y',
    '\tselect ARCH_HAS_PMEM_API if 64BIT',
    'config 64BIT',
    '\tbool "64-bit"',
    'config ACPI',
    '\tbool "ACPI"',
    '\tdepends on ARCH_SUPPORTS_ACPI',
    'config ARCH_SUPPORTS_ACPI',
    '\tbool',
    'config ARCH_HAS_PMEM_API',
    '\tbool',
    '',
  ].join('\n'),
  'drivers/Kconfig': [
    'menuconfig BLK_DEV',
    '\tbool "Block devices"',
    '\tdepends on BLOCK',
    'config LIBNVDIMM',
    '\ttristate "NVDIMM support"',
    '\tdepends on PHYS_ADDR_T_64BIT',
    '\tdepends on HAS_IOMEM',
    '\tselect DAX',
    'config PHYS_ADDR_T_64BIT',
    '\tdef_bool 64BIT',
    'config HAS_IOMEM',
    '\tdef_bool y',
    'config DAX',
    '\ttristate "DAX"',
    'if ACPI',
    'config ACPI_NFIT',
    '\ttristate "ACPI NFIT"',
    '\tdepends on PHYS_ADDR_T_64BIT',
    '\tdepends on BLK_DEV',
    '\tdepends on ARCH_HAS_PMEM_API',
    '\tselect LIBNVDIMM',
    'endif',
    'config VIRTIO_VSOCKETS_COMMON',
    '\ttristate',
    'config DRM',
    '\ttristate "DRM"',
    '\tselect DRM_PANEL if 64BIT',
    'config DRM_PANEL',
    '\tbool "panel"',
    '\tdepends on DRM',
    '',
  ].join('\n'),
  'fs/Kconfig': ['if BLOCK', 'config EXT4_FS', '\ttristate "ext4"', 'endif', ''].join('\n'),
});
const KTREE = readKconfig(KCONFIG, { srcarch: 'x86', arch: 'x86_64' });

function check(fragment: string, finalConfig: string, ignore = '') {
  const merged = mergeFragments([parseFragment('common/test.conf', fragment)]);
  return verifyConfig({
    arch: 'x86_64',
    requested: merged.requested,
    finalConfig: parseDotConfig(finalConfig),
    tree: KTREE,
    ignore: parseIgnoreList(ignore),
    overrides: merged.overrides,
  });
}

describe('verifyConfig', () => {
  it('explains the tinyconfig trap: EXT4_FS, LIBNVDIMM and ACPI_NFIT dropped with their unmet dependencies', () => {
    // What olddefconfig leaves from an allnoconfig base with EXPERT=y (BLOCK off) on a 32-bit build.
    const final =
      'CONFIG_EXPERT=y\n# CONFIG_BLOCK is not set\n# CONFIG_64BIT is not set\nCONFIG_X86=y\nCONFIG_HAS_IOMEM=y\n# CONFIG_ACPI is not set\nCONFIG_NR_CPUS=64\n';
    const r = check('CONFIG_EXPERT=y\nCONFIG_EXT4_FS=y\nCONFIG_LIBNVDIMM=y\nCONFIG_ACPI_NFIT=y\n', final);
    expect(r.ok).toBe(false);
    expect(r.present.map((p) => p.symbol)).toEqual(['EXPERT']);
    expect(r.dropped.map((d) => [d.symbol, d.actual, d.status])).toEqual([
      ['EXT4_FS', 'n', 'dropped'],
      ['LIBNVDIMM', 'n', 'dropped'],
      ['ACPI_NFIT', 'n', 'dropped'],
    ]);
    const [ext4, nvdimm, nfit] = r.dropped;
    expect(ext4!.reasons).toHaveLength(1);
    expect(ext4!.reasons[0]!.text).toContain('inside "if" BLOCK = n');
    expect(ext4!.reasons[0]!.text).toContain('BLOCK=n (not requested)');
    expect(ext4!.reasons[0]!.at).toBe('fs/Kconfig:1');
    expect(nvdimm!.reasons.map((x) => x.text)).toEqual([expect.stringMatching(/^depends on PHYS_ADDR_T_64BIT = n: PHYS_ADDR_T_64BIT=n/)]);
    expect(nvdimm!.reasons[0]!.at).toBe('drivers/Kconfig:6');
    // ACPI_NFIT: the enclosing if ACPI (ACPI itself needs ARCH_SUPPORTS_ACPI, which nothing selects) and three depends on.
    const nfitTexts = nfit!.reasons.map((x) => x.text);
    expect(nfitTexts[0]).toMatch(/^inside "if" ACPI = n: ACPI=n \(not requested\)/);
    expect(nfitTexts.slice(1)).toEqual([
      expect.stringMatching(/^depends on PHYS_ADDR_T_64BIT = n/),
      expect.stringMatching(/^depends on BLK_DEV = n: BLK_DEV=n \(not requested\)/),
      expect.stringMatching(/^depends on ARCH_HAS_PMEM_API = n: ARCH_HAS_PMEM_API=n \(not requested; no prompt, selected by X86 if 64BIT\)/),
    ]);
    expect(() => assertVerified(r, 'test tree')).toThrow(OsbuilderError);
    try {
      assertVerified(r, 'test tree');
    } catch (err) {
      expect((err as OsbuilderError).code).toBe('KERNEL_OPTION_DROPPED');
      expect((err as Error).message).toContain('CONFIG_ACPI_NFIT=y  (common/test.conf:4) -> not set');
      expect((err as Error).message).toContain('[drivers/Kconfig:19]');
      // --json prints toJSON(): the failed options, with their reasons, as data too.
      const json = JSON.parse(JSON.stringify((err as OsbuilderError).toJSON()));
      expect(Object.keys(json)).toEqual(['code', 'message', 'hint', 'details']);
      expect(json.hint).toContain('error.details');
      expect(json.details.unknown).toEqual([]);
      expect(json.details.dropped.map((d: { symbol: string }) => d.symbol)).toEqual(r.dropped.map((d) => d.symbol));
      expect(json.details.dropped.find((d: { symbol: string }) => d.symbol === 'ACPI_NFIT')).toMatchObject({
        requested: 'y',
        actual: 'n',
        status: 'dropped',
        from: 'common/test.conf:4',
        reasons: nfit!.reasons,
      });
    }
  });

  it('marks an option whose dependency was itself requested but dropped', () => {
    const r = check(
      'CONFIG_ACPI=y\nCONFIG_ACPI_NFIT=y\n',
      'CONFIG_BLOCK=y\nCONFIG_64BIT=y\nCONFIG_PHYS_ADDR_T_64BIT=y\nCONFIG_BLK_DEV=y\nCONFIG_ARCH_HAS_PMEM_API=y\n',
    );
    const acpi = r.dropped.find((d) => d.symbol === 'ACPI')!;
    expect(acpi.reasons[0]!.text).toContain('ARCH_SUPPORTS_ACPI=n (not requested; no prompt and nothing selects it)');
    const nfit = r.dropped.find((d) => d.symbol === 'ACPI_NFIT')!;
    expect(nfit.reasons.map((x) => x.text)).toEqual([expect.stringContaining('ACPI=n (requested y in common/test.conf:1 but dropped itself)')]);
  });

  it('explains hidden prompts, prompt-less symbols, selects forcing an option on, and m without MODULES', () => {
    const final =
      '# CONFIG_EXPERT is not set\nCONFIG_MULTIUSER=y\nCONFIG_BLOCK=y\nCONFIG_64BIT=y\nCONFIG_DRM=y\nCONFIG_DRM_PANEL=y\nCONFIG_DAX=y\n# CONFIG_MODULES is not set\n';
    const r = check('# CONFIG_MULTIUSER is not set\nCONFIG_VIRTIO_VSOCKETS_COMMON=y\n# CONFIG_DRM_PANEL is not set\nCONFIG_DAX=m\n', final);
    const by = new Map(r.dropped.map((d) => [d.symbol, d]));
    expect(by.get('MULTIUSER')!.status).toBe('changed');
    expect(by.get('MULTIUSER')!.reasons[0]!.text).toMatch(/has no visible prompt; its default y applies/);
    expect(by.get('VIRTIO_VSOCKETS_COMMON')!.reasons[0]!.kind).toBe('no-prompt');
    expect(by.get('VIRTIO_VSOCKETS_COMMON')!.reasons[0]!.text).toContain('nothing selects it');
    expect(by.get('DRM_PANEL')!.reasons).toEqual([{ kind: 'selected', text: 'selected by DRM=y if 64BIT', at: 'drivers/Kconfig:27' }]);
    expect(by.get('DAX')!.actual).toBe('y');
    expect(by.get('DAX')!.reasons[0]!.kind).toBe('modules');
    expect(formatOption(by.get('DRM_PANEL')!)).toContain('# CONFIG_DRM_PANEL is not set  (common/test.conf:3) -> y');
  });

  it('explains an out-of-range int value', () => {
    const r = check('CONFIG_NR_CPUS=1024\n', 'CONFIG_NR_CPUS=512\n');
    expect(r.dropped[0]!.status).toBe('changed');
    expect(r.dropped[0]!.reasons[0]!.text).toBe('value 1024 is outside the range 2..512');
  });

  it('reports unknown symbols (typos) separately and lets the ignore list excuse them with a reason', () => {
    const r = check('CONFIG_EXT4_FS=y\nCONFIG_EXT4FS=y\n', 'CONFIG_BLOCK=y\nCONFIG_EXT4_FS=y\n');
    expect(r.unknown.map((u) => u.symbol)).toEqual(['EXT4FS']);
    expect(() => assertVerified(r, 'x')).toThrow(/CONFIG_EXT4FS \(common\/test.conf:2\)/);
    try {
      assertVerified(r, 'x');
    } catch (err) {
      expect((err as OsbuilderError).code).toBe('KERNEL_SYMBOL_UNKNOWN');
      expect((err as OsbuilderError).details).toEqual({ dropped: [], unknown: r.unknown });
    }
    const ok = check('CONFIG_EXT4_FS=y\nCONFIG_EXT4FS=y\n', 'CONFIG_BLOCK=y\nCONFIG_EXT4_FS=y\n', 'CONFIG_EXT4FS only on newer kernels\n');
    expect(ok.ok).toBe(true);
    expect(ok.ignored).toMatchObject([{ symbol: 'EXT4FS', ignored: 'only on newer kernels' }]);
    expect(() => assertVerified(ok, 'x')).not.toThrow();
  });

  it('passes when everything survived, including "is not set" for absent symbols and strings', () => {
    const r = check('CONFIG_BLOCK=y\n# CONFIG_DRM is not set\nCONFIG_NR_CPUS=64\n', 'CONFIG_BLOCK=y\nCONFIG_NR_CPUS=64\n');
    expect(r.ok).toBe(true);
    expect(r.present).toHaveLength(3);
  });
});

describe('config assembly helpers', () => {
  it('replaces the base lines of requested symbols and appends the requests', () => {
    const base = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n';
    const merged = mergeOntoBase(base, parseFragment('f', 'CONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D="x"\n').entries);
    expect(merged).toBe('CONFIG_A=y\n# --- osbuilder fragments ---\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D="x"\n');
    expect(parseDotConfig(merged)).toEqual(
      new Map([
        ['A', 'y'],
        ['B', 'y'],
        ['C', 'n'],
        ['D', '"x"'],
      ]),
    );
  });

  it('runs the real make targets with ARCH, CROSS_COMPILE and KCONFIG_CONFIG', () => {
    expect(configMakeArgv('x86_64', 'olddefconfig', '.osbuilder/c')).toEqual({
      cmd: 'make',
      args: ['-s', 'ARCH=x86_64', 'olddefconfig'],
      env: { KCONFIG_CONFIG: '.osbuilder/c' },
    });
    expect(configMakeArgv('aarch64', 'allnoconfig', 'x', 'aarch64-linux-gnu-').args).toEqual([
      '-s',
      'ARCH=arm64',
      'CROSS_COMPILE=aarch64-linux-gnu-',
      'allnoconfig',
    ]);
  });
});
