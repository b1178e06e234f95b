/**
 * `osbuilder build` refuses what it cannot finish before it starts any work:
 * an install root it cannot write, an artifact nothing would boot-test, a
 * kernel checksum nothing would check, a checksum that does not match
 * Debian's linux-source. Each through the
 * compiled CLI with a fresh cache: error[CODE], a hint, exit 1 (2 for
 * USAGE), no work directory in the cache, nothing in the prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, repoRoot, runCli, type CliErrorJson } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';

let work: string;
let seq = 0;

beforeAll(async () => {
  await execa('npm', ['run', 'build']);
  work = await makeTempDir('osb-build-input-');
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A prefix's entries (none when it is missing or not a directory). */
async function listing(path: string): Promise<string[]> {
  return existsSync(path) && statSync(path).isDirectory() ? (await readdir(path)).sort() : [];
}

/**
 * Runs a build that must be refused, with a cache of its own. `checked`: where
 * the refusal comes from — 'plan' (before the cache is even created) or 'kernel
 * source' (the tarball's checksum: the work directory is made and removed again).
 */
async function expectRefused(args: string[], code: string, message: RegExp, prefix: string, checked: 'plan' | 'kernel source' = 'plan'): Promise<void> {
  const before = await listing(prefix);
  const cache = join(work, `cache-${++seq}`);
  const r = await runCli<CliErrorJson>(['build', ...args, '--prefix', prefix, '--json'], {
    env: { ...process.env, OSBUILDER_CACHE_DIR: cache } as Record<string, string>,
    timeout: 120_000,
  });
  expect(r.exitCode, r.stderr).toBe(code === 'USAGE' ? 2 : 1);
  expect(r.json?.error, r.stdout).toMatchObject({ code, message: expect.stringMatching(message), hint: expect.stringMatching(/\S/) });
  if (checked === 'plan') expect(existsSync(cache), 'no work started').toBe(false);
  else expect(await readdir(join(cache, 'work'))).toEqual([]);
  expect(await listing(prefix)).toEqual(before);
}

describe('build: the install root is checked before any work', () => {
  it('refuses a prefix under /proc or /sys (it used to spin at 100 % CPU after the build)', async () => {
    await expectRefused(['--image'], 'INPUT_INVALID', /--prefix \/proc\/x: \/proc is the kernel's pseudo file system/, '/proc/x');
    await expectRefused(['--image'], 'INPUT_INVALID', /\/sys is the kernel's pseudo file system/, '/sys/kernel/osb');
    const viaLink = join(work, 'to-proc');
    await symlink('/proc/self', viaLink);
    await expectRefused(['--image'], 'INPUT_INVALID', /leads into \/proc/, viaLink);
  });

  it('refuses a prefix that is a file, or whose install directory is one', async () => {
    const file = join(work, 'a-file');
    await writeFile(file, 'not a directory\n');
    await expectRefused(['--image'], 'INPUT_INVALID', new RegExp(`${file} is not a directory`), file);
    const blocked = join(work, 'blocked');
    await mkdir(join(blocked, 'usr/share'), { recursive: true });
    await writeFile(join(blocked, 'usr/share/kata-containers'), '');
    await expectRefused(['--image'], 'INPUT_INVALID', /usr\/share\/kata-containers is not a directory/, blocked);
  });

  it('refuses a prefix on a read-only file system (a tmpfs mounted ro in a mount namespace of its own)', async () => {
    const ro = join(work, 'ro');
    const cache = join(work, 'cache-ro');
    await mkdir(ro);
    const root = process.getuid?.() === 0;
    const script = `mount -t tmpfs -o ro,size=1m osb-ro "$1" && shift && exec "$@"`;
    const r = await execa(
      'unshare',
      [
        ...(root ? [] : ['--map-root-user']),
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        'sh',
        ro,
        'node',
        cliPath,
        'build',
        '--image',
        '--prefix',
        ro,
        '--json',
      ],
      {
        cwd: repoRoot,
        reject: false,
        env: { OSBUILDER_CACHE_DIR: cache },
        timeout: 60_000,
      },
    );
    expect(r.exitCode, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'INPUT_INVALID', message: expect.stringContaining(`${ro} is on a read-only file system`) });
    expect(existsSync(cache), 'no work started').toBe(false);
  });
});

describe('build: nothing is installed untested unless --no-boot-test', () => {
  it('refuses an image with no kernel built or installed to boot-test it, and a kernel with no image or initrd', async () => {
    const prefix = join(work, 'p-untested');
    await expectRefused(
      ['--image'],
      'INPUT_NOT_FOUND',
      /^no kernel to boot-test kata-debian-bookworm\.image with: none is built in this run and none is installed at /,
      prefix,
    );
    await expectRefused(['busybox', '--initrd'], 'INPUT_NOT_FOUND', /no kernel to boot-test kata-busybox-bookworm\.initrd/, prefix);
    await expectRefused(['--kernel'], 'USAGE', /^no image or initrd to boot-test the kernel with/, prefix);
  });
});

describe('build: a kernel checksum given is always enforced', () => {
  it('refuses --kernel-sha256 when no kernel is built, and one that is not 64 hex digits', async () => {
    const prefix = join(work, 'p-sha');
    await expectRefused(['--image', '--kernel-sha256', '0'.repeat(64)], 'USAGE', /no kernel is built/, prefix);
    await expectRefused(['--kernel', '--kernel-sha256', ''], 'INPUT_INVALID', /--kernel-sha256 "" is not 64 hex digits/, prefix);
  });

  it("checks it against Debian's linux-source too: a wrong one fails, nothing is installed", async () => {
    const local = (await readdir('/usr/src')).find((n) => /^linux-source-\d+\.\d+\.tar\.xz$/.test(n));
    expect(local, 'setup-host installs linux-source').toBeDefined();
    const prefix = join(work, 'p-mismatch');
    await expectRefused(
      ['--kernel', '--no-boot-test', '--kernel-sha256', '0'.repeat(64)],
      'CHECKSUM_MISMATCH',
      new RegExp(`${local} has sha256 [0-9a-f]{64}, expected 0{64}`),
      prefix,
      'kernel source',
    );
    expect(existsSync(join(prefix, 'usr')), 'nothing installed').toBe(false);
  });
});
