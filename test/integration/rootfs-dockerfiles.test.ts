/**
 * Every distro's rendered Dockerfile goes through the real `docker build` as
 * far as this machine allows: the engine parses the whole file before the
 * first step, so a syntax error fails at once with "dockerfile parse error",
 * while a valid file gets to Step 1 (FROM) and stops where the registry is
 * needed. The Debian-based builders are also run from the local base with
 * the network cut, up to the first step that downloads. Broken templates
 * show each check does fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdtemp as mkdtempP, rm as rmP, writeFile as writeFileP } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DISTROS, getDistro } from '../../distros/index.js';
import { ensureDebianBase, renderDockerfile } from '../../rootfs-builder/index.js';

let ctx: string;
let localBase: string;
const tag = `osbuilder-test/dockerfile-check:${process.pid}`;

async function build(dockerfile: string, args: string[] = []): Promise<{ exitCode: number; output: string }> {
  await writeFileP(join(ctx, 'Dockerfile'), dockerfile);
  const r = await execa('docker', ['build', '--force-rm', '--no-cache', ...args, '-t', tag, ctx], { reject: false, all: true, env: { DOCKER_BUILDKIT: '0' } });
  return { exitCode: r.exitCode ?? -1, output: String(r.all) };
}

const PARSE_ERROR = /dockerfile parse error|unknown instruction|Unknown flag|requires (at least|exactly)/i;

beforeAll(async () => {
  ctx = await mkdtempP(join(tmpdir(), 'osb-dockerfile-'));
  localBase = (await ensureDebianBase()).ref;
}, 15 * 60_000);

afterAll(async () => {
  await rmP(ctx, { recursive: true, force: true });
  await execa('docker', ['rmi', '-f', tag], { reject: false });
});

describe('rendered Dockerfiles parse in the real engine', () => {
  for (const d of DISTROS) {
    it(`${d.name}: parsed whole, stops only at the registry`, async () => {
      const base = d.baseImage(d.defaultVersion, 'x86_64');
      const present = (await execa('docker', ['image', 'inspect', base], { reject: false })).exitCode === 0;
      const r = await build(renderDockerfile(d, d.defaultVersion, 'x86_64', base), ['--network', 'none']);
      expect(r.exitCode).not.toBe(0);
      expect(r.output).not.toMatch(PARSE_ERROR);
      expect(r.output).toMatch(/Step 1\/\d+ : FROM /);
      if (!present) {
        // Legacy builder and BuildKit word pull failures differently; both name the registry lookup.
        expect(r.output).toMatch(/no such host|dial tcp|pull access denied|connection refused|failed to resolve|not found|i\/o timeout/i);
      }
    });
  }

  it('a broken template fails at parse time, before any step', async () => {
    const d = getDistro('fedora');
    const broken = readFileSync(d.dockerfileTemplate, 'utf8').replace('\nRUN ', '\nRUNN ');
    const r = await build(renderDockerfile(d, '40', 'x86_64', d.baseImage('40', 'x86_64'), broken), ['--network', 'none']);
    expect(r.exitCode).not.toBe(0);
    expect(r.output).toMatch(/dockerfile parse error line \d+: unknown instruction: RUNN/i);
    expect(r.output).not.toMatch(/Step 1\//);
  });
});

describe('Debian-based builders run up to the network', () => {
  for (const name of ['debian', 'busybox']) {
    it(`${name}: builds offline from the local base, which already holds the tools`, async () => {
      const r = await build(renderDockerfile(getDistro(name), 'bookworm', 'x86_64', localBase), ['--network', 'none']);
      expect(r.exitCode, r.output).toBe(0);
      expect(r.output).not.toMatch(/Reading package lists|^(Hit|Get|Err):\d/m);
    });

    it(`${name}: with a tool missing, every step before the download runs, with and without --mirror`, async () => {
      const d = getDistro(name);
      const text = renderDockerfile({ ...d, builderPackages: [...d.builderPackages, 'strace'] }, 'bookworm', 'x86_64', localBase);
      const plain = await build(text, ['--network', 'none']);
      expect(plain.exitCode).not.toBe(0);
      expect(plain.output).not.toMatch(PARSE_ERROR);
      // apt-get update is the first thing to need the network, and that is where it stops.
      expect(plain.output).toMatch(/Temporary failure resolving 'deb.debian.org'|Could not resolve 'deb.debian.org'/);
      expect(plain.output).toMatch(/Unable to locate package strace/);
      const mirrored = await build(text, ['--network', 'none', '--build-arg', 'MIRROR=http://mirror.invalid/debian']);
      expect(mirrored.output).toMatch(/Temporary failure resolving 'mirror.invalid'|Could not resolve 'mirror.invalid'/);
    });
  }

  it('a shell error in a RUN step is caught when the step runs, before the network', async () => {
    const d = getDistro('debian');
    const broken = readFileSync(d.dockerfileTemplate, 'utf8').replace(`printf 'deb %s %s main\\n'`, `printf 'deb %s %s main\\n`);
    expect(broken).not.toBe(readFileSync(d.dockerfileTemplate, 'utf8'));
    const r = await build(renderDockerfile(d, 'bookworm', 'x86_64', localBase, broken), ['--network', 'none']);
    expect(r.exitCode).not.toBe(0);
    expect(r.output).toMatch(/Syntax error|unterminated|Unterminated quoted string/i);
    expect(r.output).not.toMatch(/Successfully built/);
  });
});
