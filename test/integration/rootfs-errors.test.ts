/**
 * Bad input to `osbuilder rootfs`, through the compiled CLI: each gives
 * error[CODE], a non-zero exit, and leaves nothing at the output path (nor a
 * temp directory beside it, nor a container). Plus an interrupted build.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chown, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, runCli, repoRoot } from '../support/cli.js';
import { ContainerEngine } from '../../core/docker.js';
import type { DistroSummary } from '../../distros/index.js';
import { makeTempDir } from '../support/fixtures.js';
import { buildContainers, buildDist, standInAgent } from '../support/rootfs.js';

let work: string;
let agent: string;

beforeAll(async () => {
  await buildDist();
  work = await makeTempDir('osb-rootfs-err-');
  agent = await standInAgent();
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function expectFailure(args: string[], code: string, message: RegExp, env: Record<string, string> = {}): Promise<void> {
  const out = join(work, `out-${code}-${Math.random().toString(36).slice(2, 8)}`);
  const child = execa('node', [cliPath, 'rootfs', ...args, '-o', out], { cwd: repoRoot, env, reject: false });
  const r = await child;
  expect(r.exitCode, r.stderr).not.toBe(0);
  expect(await buildContainers(child.pid!)).toEqual([]);
  expect(r.stderr).toMatch(new RegExp(`^error\\[${code}\\]: `, 'm'));
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^ {2}hint: \S/m);
  const left = (await readdir(work)).filter((n) => n.includes(out.split('/').pop()!));
  expect(left).toEqual([]);
}

describe('osbuilder rootfs refuses bad input', () => {
  it('unknown distro: the message lists the valid ones', async () => {
    await expectFailure(
      ['gentoo', '--agent', agent],
      'UNKNOWN_DISTRO',
      /unknown distro "gentoo"; valid distros: alpine, busybox, centos, clearlinux, debian, euleros, fedora, ubuntu/,
    );
  });

  it('arch the distro does not support', async () => {
    await expectFailure(['clearlinux', '--arch', 'aarch64', '--agent', agent], 'UNSUPPORTED_ARCH', /clearlinux does not support aarch64; supported: x86_64/);
    await expectFailure(['debian', '--agent', agent], 'UNSUPPORTED_ARCH', /unknown architecture "sparc"/, { ARCH: 'sparc' });
  });

  it('missing agent file', async () => {
    await expectFailure(['debian', '--agent', join(work, 'no-such-agent')], 'MISSING_AGENT', /agent binary .*no-such-agent does not exist/);
  });

  it('agent built for another arch, and an agent that is not a binary', async () => {
    // An aarch64 ELF header is enough for the check, which reads e_machine.
    const arm = Buffer.alloc(128);
    arm.write('\x7fELF', 0, 'latin1');
    arm[4] = 2;
    arm[5] = 1;
    arm.writeUInt16LE(2, 16);
    arm.writeUInt16LE(183, 18);
    await writeFile(join(work, 'arm-agent'), arm, { mode: 0o755 });
    await expectFailure(['debian', '--agent', join(work, 'arm-agent')], 'AGENT_INVALID', /is built for aarch64 .* but the rootfs is x86_64/);
    await writeFile(join(work, 'script-agent'), '#!/bin/sh\nexec sleep 1\n', { mode: 0o755 });
    await expectFailure(['debian'], 'AGENT_INVALID', /is not an ELF executable/, { AGENT_SOURCE_BIN: join(work, 'script-agent') });
  });

  it('no Docker daemon (DOCKER_HOST at a dead socket)', async () => {
    await expectFailure(['debian', '--agent', agent], 'DOCKER_UNAVAILABLE', /cannot reach the docker daemon at unix:\/\/\/.*dead\.sock/, {
      DOCKER_HOST: `unix://${join(work, 'dead.sock')}`,
    });
  });

  it('bad AGENT_INIT, systemd on a distro without it, extra packages without a package manager', async () => {
    await expectFailure(['debian', '--agent', agent], 'USAGE', /AGENT_INIT\(sometimes\) is invalid \(must be yes or no\)/, { AGENT_INIT: 'sometimes' });
    await expectFailure(['busybox', '--agent', agent], 'UNSUPPORTED', /busybox has no systemd/, { AGENT_INIT: 'no' });
    await expectFailure(['busybox', '--agent', agent, '--extra-pkgs', 'strace'], 'UNSUPPORTED', /no package manager/);
  });

  it('a non-empty directory that is not a rootfs is never replaced', async () => {
    const dir = join(work, 'home');
    await import('node:fs/promises').then((f) => f.mkdir(dir));
    await writeFile(join(dir, 'precious'), 'keep');
    const r = await runCli(['rootfs', 'busybox', '--agent', agent, '-o', dir]);
    expect(r.stderr).toMatch(/^error\[OUTPUT_EXISTS\]: /m);
    expect(await readdir(dir)).toEqual(['precious']);
  });

  it('no registry reachable (--no-bootstrap-base pulls): the hint says how to work air-gapped; a missing --base-image is named', async () => {
    await expectFailure(['debian', '--no-bootstrap-base', '--agent', agent], 'COMMAND_FAILED', /docker pull docker.io\/library\/debian:bookworm failed/);
    const r = await runCli(['rootfs', 'debian', '--no-bootstrap-base', '--agent', agent, '-o', join(work, 'x')]);
    expect(r.stderr).toMatch(
      /hint: no registry reachable\? give a local image with --base-image \(Debian-based distros make theirs locally unless --no-bootstrap-base\)/,
    );
    await expectFailure(
      ['busybox', '--agent', agent, '--base-image', 'osbuilder-test/no-such-image:1'],
      'INPUT_NOT_FOUND',
      /base image osbuilder-test\/no-such-image:1 is not present in the local docker image store/,
    );
  });

  it('a dynamically linked agent whose loader the rootfs lacks (found after bootstrap; nothing is kept)', async () => {
    await expectFailure(
      ['busybox', '--bootstrap-base', '--agent', '/bin/true'],
      'AGENT_INVALID',
      /agent \/bin\/true is dynamically linked and needs \/lib64\/ld-linux-x86-64.so.2, which the rootfs does not have/,
    );
  });

  it("unknown package in --extra-pkgs: apt's error, surfaced", async () => {
    await expectFailure(
      ['debian', '--agent', agent, '--bootstrap-base', '--agent-init', '--extra-pkgs', 'strace no-such-package-osb'],
      'PACKAGE_NOT_FOUND',
      /Debian bookworm has no package "no-such-package-osb" \(asked for with --extra-pkgs\/EXTRA_PKGS\); mmdebstrap said: E: Unable to locate package no-such-package-osb/,
    );
  });
});

describe('osbuilder distros', () => {
  it('lists every distro with versions, default, arches, bootstrap tool, systemd support and what the tests boot', async () => {
    const r = await runCli<{ distros: DistroSummary[] }>(['distros', '--json']);
    expect(r.exitCode).toBe(0);
    const names = r.json!.distros.map((d) => d.name);
    expect(names).toEqual(['alpine', 'busybox', 'centos', 'clearlinux', 'debian', 'euleros', 'fedora', 'ubuntu']);
    expect(r.json!.distros.find((d) => d.name === 'debian')).toMatchObject({
      defaultVersion: 'bookworm',
      versions: ['bookworm', 'trixie', 'bullseye'],
      arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
      bootstrapTool: 'mmdebstrap',
      systemd: true,
    });
    const text = await runCli(['distros']);
    expect(text.stdout).toMatch(/^clearlinux +latest +x86_64 +swupd +yes/m);
    expect(text.stdout).toMatch(
      /^busybox +bookworm trixie +x86_64 aarch64 ppc64le s390x +busybox +no +agent-init +x86_64 initrd booted, aarch64 image\+initrd booted$/m,
    );
    expect(text.stdout).toMatch(
      /^debian +bookworm trixie bullseye +x86_64 aarch64 ppc64le s390x +mmdebstrap +yes +systemd agent-init +x86_64 image\+initrd booted, aarch64 image booted$/m,
    );
    expect(text.stdout).toMatch(/^fedora +.* +dnf +yes +systemd agent-init +-$/m);
  });
});

describe('interrupted builds', () => {
  it('SIGINT removes the running container and the partial rootfs; one error[INTERRUPTED] is printed', async () => {
    const out = join(work, 'interrupted');
    // No --bootstrap-base: Debian's base is made locally by default (no registry is reachable here).
    const child = execa('node', [cliPath, 'rootfs', 'debian', '--agent', agent, '-o', out], { cwd: repoRoot, reject: false });
    // Wait until the bootstrap container runs (a condition, not a delay).
    let seen: string[] = [];
    while (seen.length === 0 && child.exitCode === null) {
      seen = await buildContainers(child.pid!);
    }
    expect(seen).toEqual([`osbuilder-rootfs-${child.pid}-0`]);
    expect((await readdir(work)).some((n) => n.startsWith('.interrupted.tmp-'))).toBe(true);
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(130);
    expect(String(r.stderr)).toContain('interrupted (SIGINT): cleaning up');
    expect(
      String(r.stderr)
        .split('\n')
        .filter((l) => l.startsWith('error[')),
    ).toEqual(['error[INTERRUPTED]: interrupted by SIGINT']);
    expect(await buildContainers(child.pid!)).toEqual([]);
    expect((await readdir(work)).filter((n) => n.includes('interrupted'))).toEqual([]);
  });
});

describe('a base image from a failed bootstrap', () => {
  const engine = new ContainerEngine('docker');
  const tag = (what: string) => `osb-import-test-${what}:${process.pid}`;
  const fails = { cmd: 'sh', args: ['-c', 'echo partial; echo "E: mirror unreachable" >&2; exit 3'] };

  afterAll(async () => {
    await execa('docker', ['rmi', '-f', tag('ok'), tag('host'), tag('arm64')], { reject: false });
  });

  /** `tar -tv` of one path of an arm64 image as the engine stored it: exported through a container that is never started. */
  async function exported(ref: string, path: string): Promise<string> {
    const name = `osb-import-test-${process.pid}`;
    await execa('docker', ['create', '--platform', 'linux/arm64', '--name', name, ref, '/none']);
    try {
      return (await execa('sh', ['-c', `docker export ${name} | tar -tv --numeric-owner -f - ${path}`])).stdout;
    } finally {
      await execa('docker', ['rm', '-f', name], { reject: false });
    }
  }

  it('is never tagged: a failed producer is COMMAND_FAILED with its last words, and the tag stays absent (piped import and --platform build)', async () => {
    for (const [name, platform] of [
      ['host', undefined],
      ['arm64', 'linux/arm64'],
    ] as const) {
      await expect(engine.importFrom(fails, tag(name), undefined, [], platform)).rejects.toMatchObject({
        code: 'COMMAND_FAILED',
        message: expect.stringMatching(/failed \(exit 3\):\nE: mirror unreachable$/),
      });
      expect(await engine.imageId(tag(name)), name).toBeUndefined();
    }
  });

  it("a producer signalling its whole process group (mmdebstrap's SIGHUP on a failed tar) fails alone: osbuilder reports it", async () => {
    const hup = { cmd: 'sh', args: ['-c', 'echo partial; kill -HUP 0; sleep 5'] };
    for (const platform of [undefined, 'linux/arm64']) {
      await expect(engine.importFrom(hup, tag('host'), undefined, [], platform)).rejects.toMatchObject({
        code: 'COMMAND_FAILED',
        message: expect.stringContaining('failed (signal SIGHUP)'),
      });
    }
  });

  it('with a platform, takes a tar larger than any output buffer whole', async () => {
    const root = join(work, 'import-big');
    await mkdir(root);
    await execa('truncate', ['-s', '120M', join(root, 'big')]);
    await engine.importFrom({ cmd: 'tar', args: ['-C', root, '-c', '.'] }, tag('ok'), undefined, [], 'linux/arm64');
    expect(await exported(tag('ok'), 'big')).toMatch(/^-rw-r--r-- 0\/0 +125829120 /);
  });

  it('with a platform, is recorded as that platform and keeps owners and modes (ADD of the tar, not COPY)', async () => {
    const root = join(work, 'import-root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/owned'), 'x\n', { mode: 0o640 });
    await chown(join(root, 'etc/owned'), 100, 101);
    const id = await engine.importFrom(
      { cmd: 'tar', args: ['-C', root, '--numeric-owner', '-c', '.'] },
      tag('ok'),
      undefined,
      ['LABEL org.osbuilder.test=1'],
      'linux/arm64',
    );
    expect(await engine.imageId(tag('ok'))).toBe(id);
    expect(await engine.imagePlatform(tag('ok'))).toBe('linux/arm64');
    expect(await engine.imageLabel(tag('ok'), 'org.osbuilder.test')).toBe('1');
    expect(await exported(tag('ok'), 'etc/owned')).toMatch(/^-rw-r----- 100\/101 /);
  });
});
