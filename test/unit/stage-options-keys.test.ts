import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import yargs, { type Argv } from 'yargs';
import { buildCommand, buildOptionsFromArgs, type BuildArgs } from '../../cli/commands/build.js';
import { kernelCommand } from '../../cli/commands/kernel.js';
import { KERNEL_OPTIONS } from '../../kernel/index.js';
import { TOOL_VERSION } from '../../core/version.js';
import { fragmentsHash, readConfigVersion } from '../../kernel/index.js';
import type { GlobalArgs } from '../../cli/output.js';
import { BuildCache, cacheKey } from '../../core/cache.js';
import { OsbuilderError } from '../../core/errors.js';
import { buildOptions, outputOptions, readOptions, type OptionSpec } from '../../core/options.js';
import { IMAGE_OPTIONS } from '../../image-builder/index.js';
import { INITRD_OPTIONS } from '../../initrd-builder/index.js';
import { ROOTFS_OPTIONS } from '../../rootfs-builder/index.js';
import { imageBoot } from '../../pipeline/install-plan.js';
import { renderQemuConfig } from '../../pipeline/install.js';
import { planBuild } from '../../pipeline/plan.js';
import { parseConfig } from '../../runtime/config.js';
import { imageRootDevice, rootParams } from '../../runtime/qemu.js';
import { artifactInputs, kernelInputs, kernelStageOptions, rootfsInputs, stageContext } from '../../pipeline/stages.js';

/** `osbuilder build <args>` parsed as the CLI parses it (global --json/--debug included). */
function parse(args: string[]): BuildArgs {
  return parseWith(buildCommand, args) as BuildArgs;
}

function parseWith(command: typeof buildCommand | typeof kernelCommand, args: string[]): object {
  const y = yargs(args)
    .option('json', { type: 'boolean', default: false, global: true })
    .option('debug', { type: 'boolean', default: false, global: true })
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new OsbuilderError('USAGE', msg, 'test');
    });
  const builder = command.builder as (y: Argv<GlobalArgs>) => Argv<object>;
  return builder(y).parseSync();
}

const parts = {
  cache: new BuildCache('/osb-test-cache-root'),
  workDir: '/w',
  agent: { path: '/a', sha256: 'a'.repeat(64), source: 'default' },
  sourceDateEpoch: 1700000000,
};

/** The image and initrd stages' cache keys of `osbuilder build --image --initrd <args>`. */
function keys(args: string[]): { image: string; initrd: string } {
  const opts = buildOptionsFromArgs(parse(['--image', '--initrd', ...args]));
  const plan = planBuild(opts, undefined, 'x86_64', 2);
  const ctx = stageContext(plan, opts, parts);
  const [image, initrd] = plan.rootfs.map((job) => cacheKey(rootfsInputs(ctx, job)));
  return { image: image!, initrd: initrd! };
}

type Role = 'image' | 'initrd';

/** For each output-changing flag of `build`: the keys it changes, the args it is changed under, and a changed value. */
const changes: Record<string, { roles: Role[]; base?: string[]; changed: string[] }> = {
  // The rootfs stage's options enter both keys through the rootfs plan (distro, version, arch, packages, base).
  'os-version': { roles: ['image', 'initrd'], changed: ['--os-version', 'trixie'] },
  arch: { roles: ['image', 'initrd'], changed: ['--arch', 'aarch64'] },
  engine: { roles: ['image', 'initrd'], changed: ['--engine', 'podman'] },
  // busybox has no package manager: extra packages go into the debian image only.
  'extra-pkgs': { roles: ['image'], changed: ['--extra-pkgs', 'file'] },
  mirror: { roles: ['image', 'initrd'], changed: ['--mirror', 'http://mirror.example/debian'] },
  'base-image': { roles: ['image', 'initrd'], changed: ['--base-image', 'local/builder-base'] },
  // --agent enters both keys by the sha256 of the binary it names (tested below).
  agent: { roles: [], changed: ['--agent', '/some/kata-agent'] },
  size: { roles: ['image'], changed: ['--size', '512'] },
  'root-free-space': { roles: ['image'], changed: ['--root-free-space', '64'] },
  'fs-type': { roles: ['image'], changed: ['--fs-type', 'erofs'] },
  dax: { roles: ['image'], changed: ['--no-dax'] },
  'partition-table': { roles: ['image'], base: ['--no-dax'], changed: ['--partition-table', 'gpt'] },
  verity: { roles: ['image'], changed: ['--verity'] },
  compression: { roles: ['initrd'], changed: ['--compression', 'gzip'] },
  level: { roles: ['initrd'], changed: ['--level', '5'] },
  'root-owned': { roles: ['initrd'], changed: ['--no-root-owned'] },
};

describe('stage options: one table each, the cache key from the resolved options', () => {
  const offered = [...buildOptions(ROOTFS_OPTIONS), ...buildOptions(IMAGE_OPTIONS), ...buildOptions(INITRD_OPTIONS)];

  it('osbuilder build offers every output-changing rootfs/image/initrd option (bar those the table says why not), under the stage command names', () => {
    expect(offered.map((s) => s.flag).sort()).toEqual(Object.keys(changes).sort());
    const skipped = [...outputOptions(ROOTFS_OPTIONS), ...outputOptions(IMAGE_OPTIONS), ...outputOptions(INITRD_OPTIONS)].filter(
      (s: OptionSpec) => !offered.includes(s),
    );
    expect(skipped.map((s) => [s.flag, typeof s.notInBuild])).toEqual([
      ['agent-init', 'string'],
      ['kernel-modules', 'string'],
      ['bootstrap-base', 'string'],
      ['build-variant', 'string'],
    ]);
  });

  for (const spec of offered) {
    const c = changes[spec.flag]!;
    const what =
      c.roles.length === 0 ? 'no key by its path (by the binary, below)' : `the ${c.roles.join(' and ')} key${c.roles.length === 1 ? ' and only it' : 's'}`;
    it(`--${spec.flag} changes ${what}`, () => {
      const before = keys(c.base ?? []);
      const after = keys([...(c.base ?? []), ...c.changed]);
      for (const role of ['image', 'initrd'] as const) {
        if (c.roles.includes(role)) expect(after[role], role).not.toBe(before[role]);
        else expect(after[role], role).toBe(before[role]);
      }
    });
  }

  it('the agent enters both keys by its sha256 (build hashes the binary --agent names)', () => {
    const plan = planBuild({ image: true, initrd: true }, undefined, 'x86_64');
    const key = (sha: string) =>
      plan.rootfs.map((job) => cacheKey(rootfsInputs(stageContext(plan, {}, { ...parts, agent: { ...parts.agent, sha256: sha } }), job)));
    const [a, b] = [key('a'.repeat(64)), key('b'.repeat(64))];
    expect(a[0]).not.toBe(b[0]);
    expect(a[1]).not.toBe(b[1]);
  });

  it('--debug, --json and --jobs change no key; a default given explicitly is the default', () => {
    const base = keys([]);
    expect(keys(['--debug'])).toEqual(base);
    expect(keys(['--json'])).toEqual(base);
    expect(keys(['--jobs', '2'])).toEqual(base);
    expect(keys(['--fs-type', 'ext4', '--dax', '--partition-table', 'mbr', '--no-verity', '--compression', 'zstd', '--level', '3', '--root-owned'])).toEqual(
      base,
    );
  });

  it('the key input is every output-changing option, resolved (defaults filled in), in one line', () => {
    const plan = planBuild({ image: true, initrd: true }, undefined, 'x86_64');
    // The default image's is what it was before the table ("ext4,dax,mbr"): its cache entries stay valid.
    expect(artifactInputs(plan, 'image')).toBe('ext4,dax,mbr');
    expect(artifactInputs(plan, 'initrd')).toBe('zstd,level=3,root-owned');
    const all = planBuild(
      {
        image: true,
        initrd: true,
        imageOptions: { sizeMiB: 512, rootFreeSpaceMiB: 0, fsType: 'erofs', dax: false, partitionTable: 'gpt', verity: true },
        initrdOptions: { compression: 'none', rootOwned: false },
      },
      undefined,
      'x86_64',
    );
    expect(artifactInputs(all, 'image')).toBe('size=512,erofs,no-dax,gpt,verity');
    expect(artifactInputs(all, 'initrd')).toBe('none');
  });

  it('a stage option given to build without its stage is refused, as is a bad value, before any work', () => {
    expect(() => keys(['--fs-type', 'xfs'])).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(() => buildOptionsFromArgs(parse(['--kernel', '--verity']))).not.toThrow();
    expect(() => planBuild(buildOptionsFromArgs(parse(['--kernel', '--initrd', '--fs-type', 'erofs'])), undefined, 'x86_64')).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('--fs-type') }),
    );
    // Stage-only flags are not build's: strict parsing refuses them.
    for (const flag of ['--sha256', '--skip-agent-check', '--build-variant=x', '-r', '1', '--agent-init', '--kernel-modules=/m', '--no-bootstrap-base'])
      expect(() => parse([flag]), flag).toThrow();
  });

  it('the stage commands read Kata env vars from the same table; the flag wins', () => {
    expect(readOptions(IMAGE_OPTIONS, {}, { FS_TYPE: 'erofs', MEASURED_ROOTFS: 'yes', ROOT_FREE_SPACE: '8' })).toEqual({
      fsType: 'erofs',
      verity: true,
      rootFreeSpaceMiB: 8,
    });
    expect(readOptions(IMAGE_OPTIONS, { 'fs-type': 'ext4', verity: false }, { FS_TYPE: 'erofs', MEASURED_ROOTFS: 'yes' })).toEqual({
      fsType: 'ext4',
      verity: false,
    });
    expect(readOptions(INITRD_OPTIONS, { compression: 'xz', level: 2, 'root-owned': true })).toEqual({ compression: 'xz', level: 2, rootOwned: true });
    expect(readOptions(ROOTFS_OPTIONS, {}, { USE_PODMAN: 'yes', EXTRA_PKGS: 'a, b c', AGENT_INIT: 'no' })).toEqual({
      engine: 'podman',
      extraPackages: ['a', 'b', 'c'],
      agentInit: false,
    });
    expect(buildOptionsFromArgs(parse(['--extra-pkgs', 'a b', '--no-package-cache', '-a', 'aarch64']))).toMatchObject({
      extraPackages: ['a', 'b'],
      noPackageCache: true,
      arch: 'aarch64',
    });
  });

  it('the configuration the image is booted and installed with follows its fs type and layout', () => {
    const root = (args: string[]) => {
      const plan = planBuild(buildOptionsFromArgs(parse(['--image', '--kernel', ...args])), undefined, 'x86_64');
      const text = renderQemuConfig({ qemuPath: 'q', machineType: 'q35', kernel: 'k', image: '/p/i.img', ...imageBoot(plan), toolVersion: '1' });
      return rootParams(imageRootDevice(parseConfig(text, 'x.toml').hypervisor, '/p/i.img', 128 << 20));
    };
    expect(root([])).toEqual(['root=/dev/pmem0p1', 'rootflags=dax,data=ordered,errors=remount-ro', 'ro', 'rootfstype=ext4']);
    expect(root(['--fs-type', 'erofs'])).toEqual(['root=/dev/pmem0p1', 'rootflags=dax', 'ro', 'rootfstype=erofs']);
    expect(root(['--no-dax'])).toEqual(['root=/dev/vda1', 'rootflags=data=ordered,errors=remount-ro', 'ro', 'rootfstype=ext4']);
    // The default build's configuration is what it was: no rootfs_type line, nvdimm on.
    const plain = renderQemuConfig({
      qemuPath: 'q',
      machineType: 'q35',
      kernel: 'k',
      image: '/p/i.img',
      ...imageBoot(planBuild({ image: true }, undefined, 'x86_64')),
      toolVersion: '1',
    });
    expect(plain).toContain('disable_image_nvdimm = false\n');
    expect(plain).not.toContain('rootfs_type');
  });
});

describe('kernel options: one table, the kernel key from the resolved options', () => {
  const SOURCE = 'c'.repeat(64);
  const plan = (args: string[]) => planBuild(buildOptionsFromArgs(parse(['--kernel', '--no-boot-test', ...args])), undefined, 'x86_64');
  const inputs = (args: string[], source = SOURCE) => {
    const p = plan(args);
    return kernelInputs(stageContext(p, {}, parts), p.kernels[0]!, source);
  };
  const key = async (args: string[], source = SOURCE) => cacheKey(await inputs(args, source));
  const fragment = (text: string) => {
    const path = join(mkdtempSync(join(tmpdir(), 'osb-frag-')), 'x.conf');
    writeFileSync(path, text);
    return path;
  };

  it('build and kernel offer every output-changing kernel option under one name; build leaves out those the table says why', () => {
    expect(buildOptions(KERNEL_OPTIONS).map((s) => s.flag)).toEqual(['kernel-version', 'kernel-source', 'kernel-sha256', 'confidential', 'fragment']);
    expect(
      outputOptions(KERNEL_OPTIONS)
        .filter((s: OptionSpec) => s.notInBuild)
        .map((s) => s.flag),
    ).toEqual(['arch', 'gpu']);
    const argv = parseWith(kernelCommand, ['--source', '/k.tar.xz', '--sha256', 'abc', '-v', '6.1', '--fragment', 'a.conf', 'b.conf']);
    expect(readOptions(KERNEL_OPTIONS, argv)).toEqual({
      kernelVersion: '6.1',
      kernelSource: '/k.tar.xz',
      kernelSha256: 'abc',
      fragments: ['a.conf', 'b.conf'],
    });
    const long = parseWith(kernelCommand, ['--kernel-source', '/k.tar.xz', '--kernel-sha256', 'abc', '--confidential', 'tdx']);
    expect(readOptions(KERNEL_OPTIONS, long)).toEqual({ kernelSource: '/k.tar.xz', kernelSha256: 'abc', confidential: 'tdx' });
  });

  it("the default kernel's key inputs are what they were before the table (its cache entries stay valid)", async () => {
    expect(await inputs([])).toEqual({
      tool: TOOL_VERSION,
      source: SOURCE,
      version: '6.12.47',
      arch: 'x86_64',
      variant: 'default',
      fragments: fragmentsHash(),
      configVersion: readConfigVersion(),
      sourceDateEpoch: parts.sourceDateEpoch,
    });
  });

  it('each output-changing kernel option changes the kernel key', async () => {
    const base = await key([]);
    expect(await key(['--kernel-version', '6.6.30'])).not.toBe(base);
    // The tarball enters by its sha256: --kernel-source and --kernel-sha256 choose (and check) it.
    expect(plan(['--kernel-source', '/k.tar.xz']).kernelSource).toMatchObject({ kind: 'given', source: '/k.tar.xz' });
    expect(plan(['--kernel-sha256', 'd'.repeat(64)]).kernelSource).toMatchObject({ sha256: 'd'.repeat(64) });
    expect(await key([], 'd'.repeat(64))).not.toBe(base);
    for (const s of outputOptions(KERNEL_OPTIONS).filter((o: OptionSpec) => o.keyedBy))
      expect(Object.keys(await inputs([]))).toContain(s.keyedBy!.split(' ')[0]);
    expect(await key(['--confidential', 'tdx'])).not.toBe(base);
    expect(await key(['--confidential', 'sev'])).not.toBe(await key(['--confidential', 'tdx']));
    const [a, b, a2] = [fragment('CONFIG_A=y\n'), fragment('CONFIG_B=y\n'), fragment('CONFIG_A=y\n')];
    expect(await key(['--fragment', a])).not.toBe(base);
    expect(await key(['--fragment', a])).not.toBe(await key(['--fragment', b]));
    // By content, not by path.
    expect(await key(['--fragment', a2])).toBe(await key(['--fragment', a]));
    expect((await inputs(['--confidential', 'tdx', '--fragment', a])).options).toMatch(/^tdx,fragment=[0-9a-f]{64}$/);
  });

  it('build --fragment x.conf reaches the kernel stage (setup and build are given it)', async () => {
    const p = plan(['--fragment', 'x.conf', '--confidential', 'snp']);
    expect(p.kernelConfig).toEqual({ confidential: 'snp', fragments: [resolve('x.conf')] });
    expect(kernelStageOptions(p, p.kernels[0]!, '/tree')).toMatchObject({ kernelDir: '/tree', confidential: 'snp', fragments: [resolve('x.conf')] });
    await expect(inputs(['--fragment', '/nonexistent/x.conf'])).rejects.toMatchObject({ code: 'INPUT_NOT_FOUND' });
  });

  it('a kernel option without a kernel, or a bad confidential type, is refused before any work', () => {
    for (const args of [
      ['--image', '--fragment', 'x.conf'],
      ['--image', '--confidential', 'tdx'],
    ])
      expect(() => planBuild(buildOptionsFromArgs(parse(args)), undefined, 'x86_64'), args.join(' ')).toThrow(
        expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(args[1]!) }),
      );
    expect(() => plan(['--confidential', 'sgx'])).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});
