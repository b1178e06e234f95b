import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashTreeFiles, provenKey, readProven, toolFiles, writeProven, type ProvenRecipe } from '../../kernel/proven.js';
import type { VerifyReport } from '../../kernel/verify.js';
import { fileTree } from '../support/file-tree.js';
import { makeTempDir } from '../support/fixtures.js';

const recipe: ProvenRecipe = {
  arch: 'x86_64',
  merged: { fragments: ['common/base.conf'], requested: [{ symbol: 'VIRTIO', value: 'y', file: 'common/base.conf', line: 1 }], overrides: [] },
  ignore: new Map([['FOO', { symbol: 'FOO', reason: 'gone in 6.1', line: 1 }]]),
  toolchain: ['gcc (Debian 12.2.0-14) 12.2.0', 'GNU ld (GNU Binutils for Debian) 2.40'],
};
const report: VerifyReport = { arch: 'x86_64', requested: 1, present: [], dropped: [], unknown: [], ignored: [], overrides: [], ok: true };
const result = { config: 'CONFIG_VIRTIO=y\n', report };

function fakeTree(): string {
  const tree = fileTree({
    Kconfig: 'source "drivers/Kconfig"\n',
    'drivers/Kconfig': 'config VIRTIO\n\tbool "virtio"\n',
    Makefile: 'VERSION = 6\nPATCHLEVEL = 1\n',
    'scripts/kconfig/conf.c': 'int main(void) { return 0; }\n',
    'scripts/kconfig/parser.y': '%%\n',
    'scripts/cc-version.sh': '#!/bin/sh\n',
  });
  mkdirSync(join(tree, '.osbuilder'));
  return tree;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function setup() {
  const tree = fakeTree();
  const memo = await makeTempDir('osb-proven-memo-');
  dirs.push(tree, memo);
  const key = provenKey(recipe);
  await writeProven(tree, join(tree, '.osbuilder'), key, ['Kconfig', 'drivers/Kconfig'], result, memo);
  return { tree, memo, key, scratch: join(tree, '.osbuilder') };
}

describe('proven configs', () => {
  it('the key changes with every part of the recipe, and only with them', () => {
    const k = provenKey(recipe);
    expect(provenKey({ ...recipe, ignore: new Map(recipe.ignore) })).toBe(k);
    expect(provenKey({ ...recipe, arch: 'aarch64' })).not.toBe(k);
    expect(provenKey({ ...recipe, toolchain: ['gcc (Debian 12.2.0-15) 12.2.0', recipe.toolchain[1]!] })).not.toBe(k);
    expect(provenKey({ ...recipe, toolchain: [recipe.toolchain[0]!, 'GNU ld 2.41'] })).not.toBe(k);
    expect(provenKey({ ...recipe, ignore: new Map() })).not.toBe(k);
    const moved = { ...recipe.merged, requested: [{ ...recipe.merged.requested[0]!, value: 'm' }] };
    expect(provenKey({ ...recipe, merged: moved })).not.toBe(k);
  });

  it('tool files: the version, kconfig sources and scripts, not what make generates', () => {
    const tree = fakeTree();
    dirs.push(tree);
    writeFileSync(join(tree, 'scripts/kconfig/parser.tab.c'), '/* generated */\n');
    writeFileSync(join(tree, 'scripts/kconfig/conf.o'), 'ELF');
    expect(toolFiles(tree)).toEqual(['Makefile', 'scripts/cc-version.sh', 'scripts/kconfig/conf.c', 'scripts/kconfig/parser.y']);
  });

  it('is reused while the tree files hash the same, and not after any of them changed', async () => {
    const { tree, memo, key, scratch } = await setup();
    expect(await readProven(tree, scratch, key, memo)).toEqual(result);
    expect(await readProven(tree, scratch, provenKey({ ...recipe, arch: 'aarch64' }), memo)).toBeUndefined();
    for (const f of ['drivers/Kconfig', 'Makefile', 'scripts/kconfig/conf.c', 'scripts/cc-version.sh']) {
      const before = hashTreeFiles(tree, [f]);
      await writeFile(join(tree, f), '# changed\n', { flag: 'a' });
      expect(await readProven(tree, scratch, key, memo), f).toBeUndefined();
      await writeFile(join(tree, f), readFileSync(join(tree, f), 'utf8').replace('# changed\n', ''));
      expect(hashTreeFiles(tree, [f])).toBe(before);
      expect(await readProven(tree, scratch, key, memo), f).toEqual(result);
    }
    await rm(join(tree, 'drivers/Kconfig'));
    expect(await readProven(tree, scratch, key, memo)).toBeUndefined();
  });

  it('a new tree of the same source finds the proof in the memo and keeps it; a tree of other content does not', async () => {
    const { tree, memo, key } = await setup();
    const copy = join(await makeTempDir('osb-proven-copy-'), 'tree');
    dirs.push(copy);
    cpSync(tree, copy, { recursive: true });
    await rm(join(copy, '.osbuilder'), { recursive: true });
    const scratch = join(copy, '.osbuilder');
    const noMemo = join(memo, 'none');
    expect(await readProven(copy, scratch, key, noMemo)).toBeUndefined();
    expect(await readProven(copy, scratch, key, memo)).toEqual(result);
    // The memo's record now lives in the tree: found with another cache too.
    expect(await readProven(copy, scratch, key, noMemo)).toEqual(result);
    await writeFile(join(copy, 'drivers/Kconfig'), 'config VIRTIO\n\tbool "virtio"\n\tdepends on BROKEN\n');
    expect(await readProven(copy, scratch, key, noMemo)).toBeUndefined();
    expect(await readProven(copy, scratch, key, memo)).toBeUndefined();
  });

  it('the memo serves trees of two source versions proven under the same recipe', async () => {
    const { tree: a, memo, key } = await setup();
    const b = fileTree({ Kconfig: 'config VIRTIO\n\tbool "virtio"\n', Makefile: 'VERSION = 6\nPATCHLEVEL = 6\n' });
    dirs.push(b);
    const other = { config: 'CONFIG_VIRTIO=y\n# 6.6\n', report };
    await writeProven(b, join(b, '.osbuilder'), key, ['Kconfig'], other, memo);
    for (const t of [a, b]) await rm(join(t, '.osbuilder'), { recursive: true });
    expect(await readProven(a, join(a, '.osbuilder'), key, memo)).toEqual(result);
    expect(await readProven(b, join(b, '.osbuilder'), key, memo)).toEqual(other);
  });

  it('an unreadable record proves again', async () => {
    const { tree, key, scratch } = await setup();
    await writeFile(join(scratch, `proven.${key}.json`), '{not json');
    expect(await readProven(tree, scratch, key, join(tree, 'no-memo'))).toBeUndefined();
  });
});
