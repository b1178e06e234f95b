/**
 * Bad input to `osbuilder image`, through the compiled CLI: each gives
 * error[CODE] naming the problem, a hint, a non-zero exit, and leaves nothing
 * at the output path (nor a temp file beside it). Plus an interrupted build.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, repoRoot } from '../support/cli.js';
import { makeBusyboxRootfs, makeTempDir } from '../support/fixtures.js';
import { debianKataRootfs } from '../support/image.js';

let work: string;
let good: string;
let seq = 0;

beforeAll(async () => {
  await execa('npm', ['run', 'build']);
  work = await makeTempDir('osb-image-err-');
  good = await makeBusyboxRootfs(join(work, 'good'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function expectFailure(args: string[], code: string, message: RegExp, opts: { output?: string; exit?: number } = {}) {
  const outDir = join(work, `case-${++seq}`);
  await mkdir(outDir);
  const out = opts.output ?? join(outDir, 'kata.img');
  const r = await execa('node', [cliPath, 'image', ...args, '-o', out], { cwd: repoRoot, reject: false, env: { ...process.env, SOURCE_DATE_EPOCH: '' } });
  expect(r.exitCode, r.stderr).toBe(opts.exit ?? 1);
  expect(r.stderr).toMatch(new RegExp(`^error\\[${code}\\]: `, 'm'));
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^ {2}hint: \S/m);
  expect(await readdir(outDir)).toEqual([]);
  const j = await execa('node', [cliPath, 'image', ...args, '-o', out, '--json'], { cwd: repoRoot, reject: false });
  expect(j.exitCode).toBe(opts.exit ?? 1);
  expect(JSON.parse(j.stdout).error).toMatchObject({ code, message: expect.stringMatching(message), hint: expect.any(String) });
  expect(await readdir(outDir)).toEqual([]);
}

describe('osbuilder image refuses bad input', () => {
  it('missing rootfs', async () => {
    await expectFailure([join(work, 'nope')], 'INPUT_NOT_FOUND', /rootfs .*nope does not exist/);
  });

  it('rootfs that is a file', async () => {
    const f = join(work, 'a-file');
    await writeFile(f, 'x');
    await expectFailure([f], 'INPUT_INVALID', /rootfs .*a-file is not a directory/);
  });

  it('rootfs too large for --size (checked before anything is written)', async () => {
    const big = await debianKataRootfs();
    await expectFailure(
      [big, '--size', '128'],
      'TOO_LARGE',
      /needs about \d+\.\d MiB of files \+ ext4 metadata but --size 128 MiB leaves a root partition of 124 MiB \(the smallest size that fits is \d+ MiB/,
    );
    await expectFailure(
      [big, '--size', '128', '--fs-type', 'erofs'],
      'TOO_LARGE',
      /needs at least \d+\.\d MiB of file data but --size 128 MiB leaves a root partition of 124 MiB/,
    );
  });

  it('--size and --root-free-space that are not numbers', async () => {
    await expectFailure([good, '--size', 'large'], 'USAGE', /--size must be a whole number of MiB, got "large"/, { exit: 2 });
    await expectFailure([good, '--size', '12.5'], 'USAGE', /--size must be a whole number of MiB, got "12\.5"/, { exit: 2 });
    await expectFailure([good, '-r', '-5'], 'USAGE', /--root-free-space must be a whole number of MiB/, { exit: 2 });
  });

  it('output in a missing directory', async () => {
    await expectFailure([good], 'OUTPUT_INVALID', /output directory .*missing-dir does not exist/, { output: join(work, 'missing-dir', 'kata.img') });
  });

  it('output path that is a directory', async () => {
    const d = join(work, 'is-a-dir');
    await mkdir(d);
    await expectFailure([good], 'OUTPUT_INVALID', /output path .*is-a-dir is a directory/, { output: d });
    expect(await readdir(d)).toEqual([]);
  });

  it('unknown filesystem type; xfs refused as unsupported', async () => {
    await expectFailure([good, '--fs-type', 'btrfs'], 'USAGE', /unknown filesystem type "btrfs"; valid: ext4, erofs, xfs/, { exit: 2 });
    await expectFailure([good, '--fs-type', 'xfs'], 'UNSUPPORTED', /xfs images cannot be built without privileges/);
  });

  it('GPT with the DAX header is refused', async () => {
    await expectFailure([good, '--partition-table', 'gpt'], 'UNSUPPORTED', /a GPT cannot carry the DAX header/);
  });

  it('no init: names the paths looked at', async () => {
    const root = await makeBusyboxRootfs(join(work, 'no-init'));
    await rm(join(root, 'sbin/init'));
    await expectFailure(
      [root],
      'MISSING_INIT',
      /has no init: \/sbin\/init is missing; \/lib\/systemd\/systemd is missing; \/usr\/lib\/systemd\/systemd is missing/,
    );
  });

  it('init that is a dangling symlink, or escapes the rootfs', async () => {
    const root = await makeBusyboxRootfs(join(work, 'bad-init'));
    await rm(join(root, 'init'));
    await expectFailure([root], 'MISSING_INIT', /\/sbin\/init is a dangling symlink/);
    // an absolute target resolves inside the rootfs: /bin/busybox of the host does not count
    await rm(join(root, 'sbin/init'));
    const { symlink } = await import('node:fs/promises');
    await symlink('/usr/lib/osbuilder-not-here', join(root, 'sbin/init'));
    await expectFailure([root], 'MISSING_INIT', /\/sbin\/init is a dangling symlink/);
  });

  it('no agent', async () => {
    const root = await makeBusyboxRootfs(join(work, 'no-agent'));
    await rm(join(root, 'usr/bin/kata-agent'));
    await expectFailure([root], 'MISSING_AGENT', /has no agent: \/usr\/bin\/kata-agent is missing/);
  });

  it('--skip-agent-check builds a bare image', async () => {
    const root = await makeBusyboxRootfs(join(work, 'bare'));
    await rm(join(root, 'usr/bin/kata-agent'));
    await rm(join(root, 'sbin/init'));
    const out = join(work, 'bare.img');
    const r = await execa('node', [cliPath, 'image', root, '-o', out, '--skip-agent-check'], { cwd: repoRoot, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^image .*bare\.img$/m);
  });
});

describe('interrupted build', () => {
  it('SIGTERM while mke2fs runs leaves neither the image nor temp files', async () => {
    const big = await debianKataRootfs();
    const dir = join(work, 'interrupt');
    await mkdir(dir);
    const child = execa('node', [cliPath, 'image', big, '-o', join(dir, 'kata.img'), '--debug'], {
      cwd: repoRoot,
      reject: false,
      env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
    });
    // --debug echoes each command as it starts: kill once mke2fs writes the temp image.
    await new Promise<void>((resolve) => {
      let seen = '';
      child.stderr!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (/^debug: \$ mke2fs /m.test(seen)) resolve();
      });
    });
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(143);
    expect(r.stderr).toMatch(/interrupted \(SIGTERM\)/);
    expect(await readdir(dir)).toEqual([]);
  });
});
