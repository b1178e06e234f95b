/** Options, ids and command-line planners of the image stage. */
import { describe, expect, it } from 'vitest';
import { OsbuilderError } from '../../core/errors.js';
import { crc32cRaw } from '../../image-builder/crc32c.js';
import { deriveUuid, imageIds } from '../../image-builder/ids.js';
import { e2fsckArgs, mke2fsArgs, mke2fsEnv, mkfsErofsArgs, parseVerityFormat, verityFormatArgs, verityVerifyArgs } from '../../image-builder/mkfs.js';
import { imageOptionsFromCli, resolveImageOptions } from '../../image-builder/options.js';
import { parseMiB } from '../../core/vocab.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof OsbuilderError ? `${e.code}: ${e.message}` : `not an OsbuilderError: ${e}`;
  }
  return 'no error';
}

const base = { rootfs: '/r', output: '/o/x.img', sourceDateEpoch: null };

describe('resolveImageOptions', () => {
  it('defaults: ext4, DAX, MBR, no verity, Kata env honoured only through the CLI', () => {
    expect(resolveImageOptions(base, {})).toEqual({
      rootfs: '/r',
      output: '/o/x.img',
      rootFreeSpaceMiB: 0,
      fsType: 'ext4',
      dax: true,
      partitionTable: 'mbr',
      verity: false,
      buildVariant: '',
      skipAgentCheck: false,
      sha256: false,
    });
    expect(resolveImageOptions({ rootfs: '/r', output: '/o/x.img' }, { SOURCE_DATE_EPOCH: '1700000000' }).epoch).toBe(1700000000);
  });

  it('refuses unknown and unsupported combinations with clear codes', () => {
    expect(code(() => resolveImageOptions({ ...base, fsType: 'btrfs' }))).toMatch(/^USAGE: unknown filesystem type "btrfs"; valid: ext4, erofs, xfs/);
    expect(code(() => resolveImageOptions({ ...base, fsType: 'xfs' }))).toMatch(/^UNSUPPORTED: xfs .*protofile/);
    expect(code(() => resolveImageOptions({ ...base, partitionTable: 'gpt' }))).toMatch(/^UNSUPPORTED: a GPT cannot carry the DAX header/);
    expect(resolveImageOptions({ ...base, partitionTable: 'gpt', dax: false }).partitionTable).toBe('gpt');
    expect(code(() => resolveImageOptions({ ...base, partitionTable: 'apm' }))).toMatch(/^USAGE: unknown partition table/);
    expect(code(() => resolveImageOptions({ ...base, fsType: 'erofs', rootFreeSpaceMiB: 10 }))).toMatch(/^USAGE: erofs is read-only/);
    expect(resolveImageOptions({ ...base, sizeMiB: 129, dax: false }).sizeMiB).toBe(129);
    expect(code(() => resolveImageOptions({ ...base, sizeMiB: 1.5 }))).toMatch(/^USAGE: --size must be a whole number/);
    expect(code(() => resolveImageOptions({ rootfs: '/r', output: '/o' }, { SOURCE_DATE_EPOCH: 'yesterday' }))).toMatch(/^INPUT_INVALID: SOURCE_DATE_EPOCH/);
  });

  it('parses MiB strictly', () => {
    expect(parseMiB('512', '--size')).toBe(512);
    expect(parseMiB(undefined, '--size')).toBeUndefined();
    for (const bad of ['abc', '12M', '-1', '1e3', '1.5']) expect(code(() => parseMiB(bad, '--size'))).toMatch(/^USAGE: --size must be a whole number of MiB/);
  });

  it("CLI: Kata's IMAGE, FS_TYPE, ROOT_FREE_SPACE and MEASURED_ROOTFS as defaults, flags win", () => {
    const env = { IMAGE: '/e.img', FS_TYPE: 'erofs', ROOT_FREE_SPACE: '64', MEASURED_ROOTFS: 'yes' };
    expect(imageOptionsFromCli({ rootfs: 'r' }, env)).toMatchObject({ output: '/e.img', fsType: 'erofs', rootFreeSpaceMiB: 64, verity: true });
    expect(imageOptionsFromCli({ rootfs: 'r', output: 'o', fsType: 'ext4', rootFreeSpace: '0', verity: false }, env)).toMatchObject({
      output: 'o',
      fsType: 'ext4',
      rootFreeSpaceMiB: 0,
      verity: false,
    });
    // BUILD_VARIANT names root_hash_<variant>.txt only when verity is on; the flag wins
    expect(imageOptionsFromCli({ rootfs: 'r' }, { ...env, BUILD_VARIANT: 'cc' })).toMatchObject({ verity: true, buildVariant: 'cc' });
    expect(imageOptionsFromCli({ rootfs: 'r', verity: false }, { ...env, BUILD_VARIANT: 'cc' })).not.toHaveProperty('buildVariant');
    expect(resolveImageOptions(imageOptionsFromCli({ rootfs: 'r', buildVariant: 'x', rootFreeSpace: '0' }, env), {}).buildVariant).toBe('x');
    expect(code(() => resolveImageOptions({ ...base, verity: true, buildVariant: '../x' }, {}))).toMatch(
      /^USAGE: --build-variant "..\/x" is not a file name part/,
    );
    expect(code(() => resolveImageOptions({ ...base, buildVariant: 'x' }, {}))).toMatch(/^USAGE: --build-variant .* needs --verity/);
    expect(code(() => imageOptionsFromCli({ rootfs: 'r' }, {}))).toMatch(/^USAGE: no output file/);
    expect(code(() => imageOptionsFromCli({ rootfs: 'r', output: 'o', size: 'big' }, {}))).toMatch(/^USAGE: --size must be a whole number of MiB, got "big"/);
  });
});

describe('ids', () => {
  it('derive from SOURCE_DATE_EPOCH and role, random without it', () => {
    expect(imageIds(1700000000)).toEqual(imageIds(1700000000));
    expect(imageIds(1700000000).fsUuid).not.toBe(imageIds(1700000001).fsUuid);
    const a = imageIds(1);
    expect(new Set([a.fsUuid, a.hashSeed, a.diskGuid.toLowerCase(), ...a.partitionGuids.map((g) => g.toLowerCase())]).size).toBe(5);
    expect(deriveUuid(1, 'x')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deriveUuid(undefined, 'x')).not.toBe(deriveUuid(undefined, 'x'));
    expect(a.veritySalt).toMatch(/^[0-9a-f]{64}$/);
    expect(a.mbrSignatures[0]).not.toBe(0);
  });

  it('crc32c (for ext4 inode checksums) matches the standard check value', () => {
    expect((crc32cRaw(0xffffffff, Buffer.from('123456789')) ^ 0xffffffff) >>> 0).toBe(0xe3069283);
  });
});

describe('command lines', () => {
  it('mke2fs: ext4, 4 KiB blocks, 3 % reserved, fixed ids, populated from the rootfs at the partition offset', () => {
    const args = mke2fsArgs({ device: '/o/.x.img.tmp-1', offset: 3145728, bytes: 130023424, rootfs: '/r', uuid: 'u', hashSeed: 'h', inodes: 8000 });
    expect(args).toEqual([
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      '-m',
      '3',
      '-N',
      '8000',
      '-U',
      'u',
      '-E',
      'offset=3145728,hash_seed=h,assume_storage_prezeroed=1,nodiscard',
      '-d',
      '/r',
      '/o/.x.img.tmp-1',
      '31744',
    ]);
    expect(mke2fsEnv(1700000000)).toMatchObject({ E2FSPROGS_FAKE_TIME: '1700000000' });
    expect(mke2fsEnv(undefined).E2FSPROGS_FAKE_TIME).toBeUndefined();
    expect(mke2fsEnv(undefined).MKE2FS_CONFIG).toMatch(/image-builder\/mke2fs\.conf$/);
    expect(e2fsckArgs('/o/x', 3145728)).toEqual(['-f', '-n', '/o/x?offset=3145728']);
  });

  it('mkfs.erofs as Kata (-Enoinline_data) with our UUID; veritysetup on files with the hash at an offset', () => {
    expect(mkfsErofsArgs('/t/fs', '/r', 'u')).toEqual(['--quiet', '-Enoinline_data', '-U', 'u', '/t/fs', '/r']);
    const v = { data: '/t/fs', hash: '/t/img', hashOffset: 131072, dataBlocks: 100, salt: 'ab' };
    const tree = ['--no-superblock', '--hash=sha256', '--data-block-size=4096', '--hash-block-size=4096', '--data-blocks=100', '--hash-offset=131072'];
    expect(verityFormatArgs(v)).toEqual(['format', ...tree, '--salt=ab', '/t/fs', '/t/img']);
    expect(verityFormatArgs({ ...v, salt: undefined as unknown as string })).toEqual(['format', ...tree, '/t/fs', '/t/img']);
    expect(verityVerifyArgs(v, 'cd', 'f'.repeat(64))).toEqual(['verify', ...tree, '--salt=cd', '/t/fs', '/t/img', 'f'.repeat(64)]);
    const out = parseVerityFormat(
      `VERITY header information for x\nUUID:            \t\nHash type:       \t1\nSalt:            \t${'a'.repeat(64)}\nRoot hash:      \t${'b'.repeat(64)}\n`,
    );
    expect(out).toEqual({ rootHash: 'b'.repeat(64), salt: 'a'.repeat(64) });
    expect(() => parseVerityFormat(`Root hash:      \t${'b'.repeat(64)}\n`)).toThrow(/no salt/);
    expect(() => parseVerityFormat('nothing')).toThrow(/no root hash/);
    expect(() => parseVerityFormat('nothing')).toThrow(expect.objectContaining({ code: 'COMMAND_FAILED' }));
  });
});
