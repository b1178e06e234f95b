/**
 * The rootfs leaves the engine as a tar stream (rootfs-builder/stream.ts):
 * the argv of every stream command, the volume's argv and labels, which
 * leftovers count as orphans, and the pipeline that joins the commands.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { orphanNames, createArgv, volumeCreateArgv, volumeMountArg, volumeOwnerFormat } from '../../core/docker.js';
import { OsbuilderError } from '../../core/errors.js';
import { blame, pipeline } from '../../core/pipe.js';
import { DEPMOD_BASE, depmodStreamArgv, exportTreeArgv, packDirArgv, streamName, unpackScratchArgv, unpackTreeArgv } from '../../rootfs-builder/stream.js';

describe('stream argv', () => {
  it('the builder sends the tree with numeric owners and every xattr; the host unpacks it keeping owners and modes', () => {
    expect(exportTreeArgv('/rootfs')).toEqual(['tar', '-C', '/rootfs', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-cf', '-', '.']);
    expect(unpackTreeArgv('/out/r.tmp-1')).toEqual([
      'tar',
      '-C',
      '/out/r.tmp-1',
      '--numeric-owner',
      '--same-owner',
      '--same-permissions',
      '--xattrs',
      '--xattrs-include=*',
      '-xf',
      '-',
    ]);
  });

  it('depmod: the modules go in on stdin, only modules.* come back; the kernel release is an argument, not script text', () => {
    expect(packDirArgv('/m/6.1.0-1')).toEqual(['tar', '-C', '/m/6.1.0-1', '--numeric-owner', '-cf', '-', '.']);
    expect(unpackScratchArgv('/tmp/s')).toEqual(['tar', '-C', '/tmp/s', '--no-same-owner', '-xf', '-']);
    const argv = depmodStreamArgv('6.1.0-13-cloud-amd64');
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    expect(argv.slice(3)).toEqual(['sh', '6.1.0-13-cloud-amd64']);
    expect(argv[2]).not.toContain('6.1.0');
    expect(argv[2]).toContain(`depmod -b ${DEPMOD_BASE} "$1"`);
  });

  describe('the depmod script, run by sh with a stub depmod on PATH', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'osb-depmod-'));
      await mkdir(join(dir, 'mods/kernel/fs'), { recursive: true });
      await writeFile(join(dir, 'mods/kernel/fs/foo.ko'), 'module');
      await writeFile(join(dir, 'mods/modules.order'), 'kernel/fs/foo.ko\n');
      await mkdir(join(dir, 'bin'));
      await mkdir(join(dir, 'out'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** A depmod that records its argv and indexes the .ko files it finds under -b <base> (or fails with `exit`). */
    async function stubDepmod(exit = 0): Promise<void> {
      const script = [
        '#!/bin/sh',
        `echo "$@" > "${dir}/depmod-args"`,
        '[ "$1" = -b ] || exit 9',
        `[ ${exit} = 0 ] || { echo "depmod: broken" >&2; exit ${exit}; }`,
        'cd "$2/lib/modules/$3" || exit 8',
        'find . -name "*.ko" | sed "s|^./||; s|$|:|" > modules.dep',
        'echo "alias fs-foo foo" > modules.alias',
      ].join('\n');
      await writeFile(join(dir, 'bin/depmod'), `${script}\n`, { mode: 0o755 });
    }

    /** The modules tar | the script | the host unpack, as EngineTree.depmod joins them. */
    async function runScript(kver: string): Promise<void> {
      const [sh, ...args] = depmodStreamArgv(kver, join(dir, 'base'));
      const [tarIn, ...inArgs] = packDirArgv(join(dir, 'mods'));
      const [tarOut, ...outArgs] = unpackScratchArgv(join(dir, 'out'));
      await pipeline([
        { cmd: tarIn!, args: inArgs },
        { cmd: sh!, args, env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}` } },
        { cmd: tarOut!, args: outArgs },
      ]);
    }

    it('unpacks the modules under <base>/lib/modules/<kver>, runs depmod -b <base> <kver>, sends back only modules.*', async () => {
      await stubDepmod();
      await runScript('6.1.62-kata');
      expect((await readFile(join(dir, 'depmod-args'), 'utf8')).trim()).toBe(`-b ${join(dir, 'base')} 6.1.62-kata`);
      expect((await readdir(join(dir, 'out'))).sort()).toEqual(['modules.alias', 'modules.dep', 'modules.order']);
      expect(await readFile(join(dir, 'out/modules.dep'), 'utf8')).toBe('kernel/fs/foo.ko:\n');
    });

    it('a kernel release with shell syntax stays one argument', async () => {
      await stubDepmod();
      const kver = `6.1 $(touch ${join(dir, 'pwned')}); x`;
      await runScript(kver);
      expect((await readFile(join(dir, 'depmod-args'), 'utf8')).trim()).toBe(`-b ${join(dir, 'base')} ${kver}`);
      expect(await readdir(join(dir, 'out'))).toContain('modules.dep');
      await expect(stat(join(dir, 'pwned'))).rejects.toThrow();
    });

    it('a failing depmod fails the script (set -e), with its stderr', async () => {
      await stubDepmod(4);
      await expect(runScript('6.1.62-kata')).rejects.toThrow(/depmod: broken/);
    });
  });

  it('names are ours and unique within the process', () => {
    const a = streamName('volume');
    const b = streamName('volume');
    expect(a).toMatch(new RegExp(`^osbuilder-rootfs-volume-${process.pid}-\\d+$`));
    expect(a).not.toBe(b);
  });
});

describe('volumes', () => {
  it('create: labels sorted; mount: type=volume', () => {
    expect(volumeCreateArgv('osbuilder-rootfs-volume-1-0', { 'org.osbuilder.owner': '1-2', 'org.osbuilder.build': '1' })).toEqual([
      'volume',
      'create',
      '--label',
      'org.osbuilder.build=1',
      '--label',
      'org.osbuilder.owner=1-2',
      'osbuilder-rootfs-volume-1-0',
    ]);
    expect(volumeMountArg({ volume: 'v1', container: '/rootfs' })).toBe('type=volume,source=v1,target=/rootfs');
  });

  it('refuses names the engine or the --mount syntax would misread', () => {
    expect(() => volumeMountArg({ volume: 'v,target=/etc', container: '/rootfs' })).toThrow(OsbuilderError);
    expect(() => volumeMountArg({ volume: '/host/path', container: '/rootfs' })).toThrow(OsbuilderError);
    expect(() => volumeCreateArgv('-rf', {})).toThrow(OsbuilderError);
  });

  it('a stream container: the volume mounted, -i when fed, no engine-side log of the tar', () => {
    expect(
      createArgv({ image: 'img', name: 'n', argv: ['tar', '-cf', '-', '.'], volumes: [{ volume: 'v', container: '/rootfs' }], noLogs: true, input: '' }),
    ).toEqual(['create', '--rm', '--name', 'n', '-i', '--log-driver', 'none', '--mount', 'type=volume,source=v,target=/rootfs', 'img', 'tar', '-cf', '-', '.']);
  });

  it("volume listings name their owner tag, in each engine's template", () => {
    expect(volumeOwnerFormat('docker')).toBe('{{.Name}} {{.Label "org.osbuilder.owner"}}');
    expect(volumeOwnerFormat('podman')).toBe('{{.Name}} {{index .Labels "org.osbuilder.owner"}}');
  });

  it('orphans: names whose owner tag is not kept; unreadable lines are skipped', () => {
    const listing = 'vol-a 100-5\nvol-b 200-6\n\nvol-c\n';
    expect(orphanNames(listing, (tag) => tag === '200-6')).toEqual(['vol-a']);
  });
});

describe('pipeline', () => {
  it('blames the stage that failed on its own, not the one that lost its reader', () => {
    expect(blame([{ failed: false }, { failed: false }])).toBe(-1);
    expect(blame([{ failed: true, signal: 'SIGPIPE' }, { failed: true }])).toBe(1);
    expect(blame([{ failed: true }, { failed: true }])).toBe(0);
    expect(blame([{ failed: true, signal: 'SIGPIPE' }])).toBe(0);
  });

  it('joins stdout to stdin, bytes intact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-pipe-'));
    try {
      await pipeline([
        { cmd: 'printf', args: ['a\\000b\\377\\n'] },
        { cmd: 'tr', args: ['a', 'z'] },
        { cmd: 'sh', args: ['-c', 'cat > "$1"', 'sh', join(dir, 'out')] },
      ]);
      expect(await readFile(join(dir, 'out'))).toEqual(Buffer.from([0x7a, 0, 0x62, 0xff, 0x0a]));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a failing stage is a COMMAND_FAILED naming it, with its stderr and hint', async () => {
    const err = await pipeline([
      { cmd: 'printf', args: ['x'] },
      { cmd: 'sh', args: ['-c', 'cat >/dev/null; echo broken >&2; exit 3'], hint: 'the hint' },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsbuilderError);
    expect(err).toMatchObject({ code: 'COMMAND_FAILED', hint: 'the hint' });
    expect((err as Error).message).toMatch(/exit 3\):\nbroken/);
    await expect(
      pipeline([
        { cmd: 'printf', args: ['x'] },
        { cmd: 'osb-no-such-tool', args: [] },
      ]),
    ).rejects.toMatchObject({ code: 'TOOL_MISSING' });
  });
});
