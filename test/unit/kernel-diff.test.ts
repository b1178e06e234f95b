/**
 * `kernel diff`: the comparison (kernel/diff.ts) on a hand-made pair of
 * configs, the sides read from files and a Kata-like fragments dir
 * (kernel/diff-input.ts), Kconfig menu grouping from a tiny source tree, and
 * the command as yargs runs it (--json shape, errors).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileTree } from '../support/file-tree.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import yargs from 'yargs';
import { diffConfigs, menuIndex, NOT_IN_TREE, TOP_MENU, UNGROUPED, type DiffSide } from '../../kernel/diff.js';
import { cachedKernelTree, kernelMenus, readConfigFile, readFragmentsDir, readSide } from '../../kernel/diff-input.js';
import { readKconfig } from '../../kernel/kconfig.js';
import { diffKernel } from '../../kernel/index.js';
import { kernelCommand } from '../../cli/commands/kernel.js';
import { OsbuilderError } from '../../core/errors.js';
import { failure } from '../support/errors.js';
import { codeOf } from '../support/errors.js';

const tree = (files: Record<string, string>): string => fileTree(files, 'osb-kdiff-');

// The hand-made pair: A and B share SAME, disagree on TRI (y/m), NR (numbers), NAME (strings),
// each enables what the other lacks, and OFF_A/OFF_B are "is not set" on one side and absent on the other.
const CONFIG_A = [
  '# Linux/x86 6.1 Kernel Configuration',
  'CONFIG_SAME=y',
  'CONFIG_TRI=y',
  'CONFIG_NR=64',
  'CONFIG_NAME="kata"',
  'CONFIG_ONLY_A=m',
  'CONFIG_UNSET_IN_B=y',
  '# CONFIG_OFF_A is not set',
  '',
].join('\n');
const CONFIG_B = [
  'CONFIG_SAME=y',
  'CONFIG_TRI=m',
  'CONFIG_NR=240',
  'CONFIG_NAME="other"',
  'CONFIG_ONLY_B=y',
  '# CONFIG_UNSET_IN_B is not set',
  '# CONFIG_OFF_B is not set',
  '',
].join('\n');

// A tiny Kconfig tree: two menus, a menuconfig whose `if` block is a submenu, a top-level symbol.
const KCONFIG = {
  Kconfig: [
    'mainmenu "Test"',
    'config SAME',
    '\tbool "same"',
    'menu "General setup"',
    'config NAME',
    '\tstring "name"',
    'config NR',
    '\tint "nr"',
    'endmenu',
    'menu "Device Drivers"',
    'menuconfig BLK',
    '\tbool "Block devices"',
    'if BLK',
    'config ONLY_A',
    '\ttristate "a"',
    'config TRI',
    '\ttristate "tri"',
    'endif',
    'config ONLY_B',
    '\tbool "b"',
    'if ONLY_B',
    'config UNSET_IN_B',
    '\tbool "u"',
    'endif',
    'endmenu',
    '',
  ].join('\n'),
};

describe('diffConfigs on a hand-made pair', () => {
  const dir = tree({ 'a.config': CONFIG_A, 'b.config': CONFIG_B });
  const a = readConfigFile(join(dir, 'a.config'));
  const b = readConfigFile(join(dir, 'b.config'));

  it('lists what each side sets that the other does not, and differing values separately', () => {
    const d = diffConfigs(a, b);
    expect(d.grouping).toEqual({ by: 'none' });
    expect(d.groups).toEqual([
      {
        menu: UNGROUPED,
        onlyLeft: [
          { symbol: 'ONLY_A', value: 'm' },
          { symbol: 'UNSET_IN_B', value: 'y' },
        ],
        onlyRight: [{ symbol: 'ONLY_B', value: 'y' }],
        differ: [
          { symbol: 'NAME', left: '"kata"', right: '"other"' },
          { symbol: 'NR', left: '64', right: '240' },
          { symbol: 'TRI', left: 'y', right: 'm' },
        ],
      },
    ]);
    expect(d.counts).toEqual({ onlyLeft: 2, onlyRight: 1, differ: 3, same: 1 });
    expect(d.left).toEqual({ source: join(dir, 'a.config'), kind: 'config', detail: '.config file, 7 symbols' });
  });

  it('is symmetric: swapping the sides swaps onlyLeft/onlyRight and the values of differ', () => {
    const d = diffConfigs(b, a);
    expect(d.counts).toEqual({ onlyLeft: 1, onlyRight: 2, differ: 3, same: 1 });
    expect(d.groups[0]!.differ[2]).toEqual({ symbol: 'TRI', left: 'm', right: 'y' });
  });

  it('groups by Kconfig menu (a menuconfig + if block is a submenu), unknown symbols last', () => {
    const kt = tree(KCONFIG);
    const menus = menuIndex(readKconfig(kt, { srcarch: 'x86', arch: 'x86_64' }), '--kernel-dir');
    const withExtra: DiffSide = { ...a, values: new Map([...a.values, ['GONE', 'y']]) };
    const d = diffConfigs(withExtra, b, menus);
    expect(d.grouping).toEqual({ by: 'kconfig', tree: kt, from: '--kernel-dir' });
    expect(d.groups.map((g) => [g.menu, g.onlyLeft.map((e) => e.symbol), g.onlyRight.map((e) => e.symbol), g.differ.map((e) => e.symbol)])).toEqual([
      ['General setup', [], [], ['NAME', 'NR']],
      ['Device Drivers', ['UNSET_IN_B'], ['ONLY_B'], []],
      ['Device Drivers > Block devices', ['ONLY_A'], [], ['TRI']],
      [NOT_IN_TREE, ['GONE'], [], []],
    ]);
    // UNSET_IN_B sits in an `if` on a plain config (not a menuconfig): the enclosing menu.
    expect(menus.menuOf.get('UNSET_IN_B')).toBe('Device Drivers');
    expect(menus.menuOf.get('SAME')).toBe(TOP_MENU);
  });
});

describe('fragments directories', () => {
  // Kata's layout: common/*.conf + <arch>/*.conf; other arches and `!x86_64`-tagged common files left out.
  const kata = tree({
    'common/base.conf': 'CONFIG_SAME=y\nCONFIG_TRI=m\n# CONFIG_ONLY_A is not set\n',
    'common/net.conf': 'CONFIG_NET=y\nCONFIG_TRI=y\n',
    'common/dax.conf': '# !x86_64\nCONFIG_DAX=y\n',
    'common/s390.conf': '# arch: s390x\nCONFIG_S390_ONLY=y\n',
    'common/README.md': 'not a fragment',
    'x86_64/x86.conf': 'CONFIG_NR=240\n',
    'arm64/arm.conf': 'CONFIG_ARM_ONLY=y\n',
    'whitelist.conf': 'CONFIG_IGNORED_AT_TOP\n',
  });

  it("reads Kata's layout for the arch: later files win, excluded files are counted", () => {
    const side = readFragmentsDir(kata, 'x86_64');
    expect(side.kind).toBe('fragments');
    expect(side.detail).toBe('fragments (common/*.conf + x86_64/*.conf): 3 file(s), 2 left out for x86_64');
    expect(Object.fromEntries(side.values)).toEqual({ SAME: 'y', TRI: 'y', ONLY_A: 'n', NET: 'y', NR: '240' });
    expect(side.files!.get('TRI')).toBe('common/net.conf');
    expect(side.files!.get('NR')).toBe('x86_64/x86.conf');
    expect(readFragmentsDir(kata, 'aarch64').values.get('ARM_ONLY')).toBe('y');
  });

  it('groups by fragment file without a kernel tree; a .config-only symbol is ungrouped', () => {
    const dir = tree({ 'a.config': CONFIG_A });
    const d = diffConfigs(readConfigFile(join(dir, 'a.config')), readFragmentsDir(kata, 'x86_64'));
    expect(d.grouping.by).toBe('fragment');
    expect(d.groups.map((g) => g.menu)).toEqual(['common/base.conf', 'common/net.conf', 'x86_64/x86.conf', UNGROUPED]);
    const base = d.groups[0]!;
    // ONLY_A is "is not set" in common/base.conf: the file that mentions it names the group.
    expect(base.onlyLeft).toEqual([{ symbol: 'ONLY_A', value: 'm' }]);
    expect(d.groups[1]).toEqual({ menu: 'common/net.conf', onlyLeft: [], onlyRight: [{ symbol: 'NET', value: 'y' }], differ: [] });
    expect(d.groups[2]!.differ).toEqual([{ symbol: 'NR', left: '64', right: '240' }]);
    expect(d.groups[3]!.onlyLeft.map((e) => e.symbol)).toEqual(['NAME', 'UNSET_IN_B']);
    expect(d.counts).toEqual({ onlyLeft: 3, onlyRight: 1, differ: 1, same: 2 });
  });

  it('reads every *.conf of a flat directory', () => {
    const flat = tree({ 'b.conf': 'CONFIG_B=y\n', 'a.conf': 'CONFIG_A=m\n', 'notes.txt': 'x' });
    const side = readSide(flat, 'x86_64');
    expect(side.detail).toBe('fragments (*.conf): 2 file(s)');
    expect([...side.files!.entries()]).toEqual([
      ['A', 'a.conf'],
      ['B', 'b.conf'],
    ]);
  });
});

describe('bad input', () => {
  const dir = tree({
    'binary.config': 'CONFIG_A=y\n\0\x7fELF',
    'prose.config': 'CONFIG_A=y\nhello world\n',
    'comments.config': '# just a comment\n\n',
    'empty/notes.txt': 'x',
    'badfrag/common/a.conf': 'CONFIG_A=maybe\n',
  });

  it('a missing path is INPUT_NOT_FOUND; binary, prose, empty or malformed input is INPUT_INVALID naming the file', () => {
    expect(codeOf(() => readSide(join(dir, 'nope'), 'x86_64'))).toBe('INPUT_NOT_FOUND');
    for (const f of ['binary.config', 'prose.config', 'comments.config', 'empty', 'badfrag']) {
      let err: unknown;
      try {
        readSide(join(dir, f), 'x86_64');
      } catch (e) {
        err = e;
      }
      expect(err, f).toBeInstanceOf(OsbuilderError);
      expect((err as OsbuilderError).code, f).toBe('INPUT_INVALID');
      expect((err as OsbuilderError).message, f).toContain(f === 'badfrag' ? 'common/a.conf:1' : f);
      expect((err as OsbuilderError).hint, f).toMatch(/\.config file, a fragments directory/);
    }
  });

  it('--kernel-dir without a Kconfig file is INPUT_INVALID', () => {
    expect(codeOf(() => kernelMenus(dir, 'x86_64', '--kernel-dir'))).toBe('INPUT_INVALID');
  });
});

describe('diffKernel: ours, and the kernel tree in the build cache', () => {
  const saved = process.env.OSBUILDER_CACHE_DIR;
  let cache: string;
  beforeEach(() => {
    cache = tree({ 'kernel-trees/linux-6.1-x86_64-nvidia/Kconfig': '', 'kernel-trees/linux-6.1-aarch64/Kconfig': '' });
    process.env.OSBUILDER_CACHE_DIR = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.OSBUILDER_CACHE_DIR;
    else process.env.OSBUILDER_CACHE_DIR = saved;
  });

  it('finds the newest default-variant tree for the arch only', () => {
    expect(cachedKernelTree('x86_64', cache)).toBeUndefined();
    for (const v of ['6.1', '6.12', '6.9']) {
      mkdirSync(join(cache, 'kernel-trees', `linux-${v}-x86_64`));
      writeFileSync(join(cache, 'kernel-trees', `linux-${v}-x86_64`, 'Kconfig'), '');
    }
    expect(cachedKernelTree('x86_64', cache)).toBe(join(cache, 'kernel-trees', 'linux-6.12-x86_64'));
  });

  it('without a tree, ours is our merged fragment request, grouped by our fragment files', async () => {
    const dir = tree({ 'a.config': 'CONFIG_VIRTIO_BLK=m\nCONFIG_NOT_OURS=y\n' });
    const d = await diffKernel({ left: 'ours', right: join(dir, 'a.config'), arch: 'x86_64' });
    expect(d.left.kind).toBe('ours-requested');
    expect(d.left.detail).toMatch(/not resolved: no --kernel-dir given/);
    expect(d.grouping.by).toBe('fragment');
    const virtio = d.groups.find((g) => g.differ.some((e) => e.symbol === 'VIRTIO_BLK'));
    expect(virtio?.menu).toMatch(/^common\/.+\.conf$/);
    expect(d.groups.find((g) => g.menu === UNGROUPED)?.onlyRight).toEqual([{ symbol: 'NOT_OURS', value: 'y' }]);
  });

  it('a kernel tree in the build cache groups by its Kconfig menus', async () => {
    const cached = join(cache, 'kernel-trees', 'linux-6.1-x86_64');
    mkdirSync(cached);
    writeFileSync(join(cached, 'Kconfig'), KCONFIG.Kconfig);
    const dir = tree({ 'a.config': CONFIG_A, 'b.config': CONFIG_B });
    const d = await diffKernel({ left: join(dir, 'a.config'), right: join(dir, 'b.config'), arch: 'x86_64' });
    expect(d.grouping).toEqual({ by: 'kconfig', tree: cached, from: 'build cache' });
    expect(d.groups.map((g) => g.menu)).toEqual(['General setup', 'Device Drivers', 'Device Drivers > Block devices']);
  });

  it('bad input fails before ours is resolved', async () => {
    const err = await failure(diffKernel({ left: 'ours', right: '/nonexistent/kata.config', arch: 'x86_64', kernelDir: '/nonexistent/tree' }));
    expect(err.code).toBe('INPUT_NOT_FOUND');
  });
});

describe('osbuilder kernel diff (yargs + runCommand)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  async function cli(args: string[]): Promise<{ stdout: string; exitCode: number | string | undefined }> {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    await yargs(args)
      .option('json', { type: 'boolean', default: false })
      .option('debug', { type: 'boolean', default: false })
      .strict()
      .command(kernelCommand)
      .parseAsync();
    return { stdout, exitCode: process.exitCode };
  }

  const dir = tree({
    'a.config': CONFIG_A,
    'b.config': CONFIG_B,
    'junk.config': 'hello\n',
    ...Object.fromEntries(Object.entries(KCONFIG).map(([k, v]) => [`src/${k}`, v])),
  });

  it('--json prints { left, right, grouping, groups, counts }', async () => {
    const r = await cli(['kernel', 'diff', join(dir, 'a.config'), join(dir, 'b.config'), '-k', join(dir, 'src'), '-a', 'x86_64', '--json']);
    expect(r.exitCode).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).toEqual(['left', 'right', 'grouping', 'groups', 'counts']);
    expect(j.left).toEqual({ source: join(dir, 'a.config'), kind: 'config', detail: '.config file, 7 symbols' });
    expect(j.grouping).toEqual({ by: 'kconfig', tree: join(dir, 'src'), from: '--kernel-dir' });
    expect(j.groups[2]).toEqual({
      menu: 'Device Drivers > Block devices',
      onlyLeft: [{ symbol: 'ONLY_A', value: 'm' }],
      onlyRight: [],
      differ: [{ symbol: 'TRI', left: 'y', right: 'm' }],
    });
    expect(j.counts).toEqual({ onlyLeft: 2, onlyRight: 1, differ: 3, same: 1 });
  });

  it('human output: one block per menu, counts at the end', async () => {
    const r = await cli(['kernel', 'diff', join(dir, 'a.config'), join(dir, 'b.config'), '-a', 'x86_64', '-k', join(dir, 'src')]);
    expect(r.stdout).toContain('Device Drivers > Block devices:\n  only in A  CONFIG_ONLY_A  m\n  differs    CONFIG_TRI     A=y B=m\n');
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('2 only in A, 1 only in B, 3 differ, 1 the same');
  });

  it('a side that is not a config: one {"error"} object, exit 1; a missing side is USAGE (exit 2)', async () => {
    const r = await cli(['kernel', 'diff', join(dir, 'a.config'), join(dir, 'junk.config'), '--json']);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'INPUT_INVALID', message: expect.stringContaining('junk.config:1'), hint: expect.any(String) } });
    const u = await cli(['kernel', 'diff', join(dir, 'a.config'), '--json']);
    expect(u.exitCode).toBe(2);
    expect(JSON.parse(u.stdout).error.code).toBe('USAGE');
  });
});
