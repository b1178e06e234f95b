/**
 * Our rootfs through the rest of the pipeline, stage by stage: `osbuilder
 * image` and `osbuilder initrd` on them, then `osbuilder boot` under QEMU with
 * the suite's guest kernel, talking to osbuilder's own agent through Kata's
 * API: a container that binds the guest's /etc/os-release must see the
 * rootfs's there. Covers the trimmed systemd guest booting to the
 * agent, and debian with the agent as init as an initrd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { guestKernel as suiteKernel } from '../support/kernel.js';
import { buildDist } from '../support/rootfs.js';

await buildDist();

let work: string;
const SDE = '1700000000';

async function cli(args: string[], timeout = 30 * 60_000) {
  const r = await runCli([...args, '--json'], { env: { SOURCE_DATE_EPOCH: SDE }, timeout });
  if (r.exitCode !== 0) throw new Error(`osbuilder ${args.join(' ')} failed (${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A container that shows the guest's /etc/os-release (bound read-only at /guest/os-release). */
const GUEST_OS_RELEASE = ['--guest-mount', '/etc/os-release:/guest/os-release', '--', 'cat', '/guest/os-release'];

async function guestKernel(): Promise<string> {
  return (await suiteKernel()).bzImage;
}

beforeAll(async () => {
  work = await makeTempDir('osb-rootfs-pipe-');
  // osbuilder's own agent (no --agent): the boot tests talk to it.
  await cli(['rootfs', 'debian', '-o', join(work, 'debian-systemd'), '--bootstrap-base']);
  await cli(['rootfs', 'debian', '-o', join(work, 'debian-init'), '--agent-init', '--bootstrap-base']);
  await cli(['rootfs', 'busybox', '-o', join(work, 'busybox'), '--bootstrap-base']);
}, 40 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('osbuilder image on a debian systemd rootfs', () => {
  it('makes an image file', async () => {
    await cli(['image', join(work, 'debian-systemd'), '-o', join(work, 'debian.img')]);
    expect((await stat(join(work, 'debian.img'))).size % (128 * 1024 * 1024)).toBe(0);
  });

  it('boots to the agent (trimmed systemd guest); /etc/os-release inside is the rootfs one', async () => {
    const kernel = await guestKernel();
    const r = await runCli(['boot', '--kernel', kernel, '--image', join(work, 'debian.img'), '--timeout', '600', ...GUEST_OS_RELEASE], {
      timeout: 15 * 60_000,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe((await readFile(join(work, 'debian-systemd/etc/os-release'), 'utf8')).trimEnd()); // runCli strips the final newline
  });
});

describe('osbuilder initrd on a busybox rootfs', () => {
  it('makes an initrd', async () => {
    await cli(['initrd', join(work, 'busybox'), '-o', join(work, 'busybox.initrd')]);
    expect((await stat(join(work, 'busybox.initrd'))).size).toBeGreaterThan(100 * 1024);
    // What the kernel will unpack: our tree, /init being the agent.
    const list = await execa('sh', ['-c', 'zstd -dc "$1" | cpio -itv --quiet', 'sh', join(work, 'busybox.initrd')]);
    const names = String(list.stdout).split('\n');
    expect(names.some((l) => / init -> \/usr\/bin\/kata-agent$/.test(l))).toBe(true);
    for (const f of ['etc/os-release', 'usr/bin/kata-agent', 'bin/busybox', 'var/lib/osbuilder/osbuilder.yaml'])
      expect(names.some((l) => l.endsWith(` ${f}`))).toBe(true);
  });

  it('boots with the agent as init; /etc/os-release inside is the rootfs one', async () => {
    const kernel = await guestKernel();
    const r = await runCli(['boot', '--kernel', kernel, '--initrd', join(work, 'busybox.initrd'), '--timeout', '600', ...GUEST_OS_RELEASE], {
      timeout: 15 * 60_000,
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe((await readFile(join(work, 'busybox/etc/os-release'), 'utf8')).trimEnd()); // runCli strips the final newline
  });
});

describe('debian with the agent as init, as an initrd', () => {
  it('makes an initrd and boots it: the agent is PID 1, /etc/os-release inside is the rootfs one', async () => {
    await cli(['initrd', join(work, 'debian-init'), '-o', join(work, 'debian.initrd')]);
    const list = await execa('sh', ['-c', 'zstd -dc "$1" | cpio -itv --quiet', 'sh', join(work, 'debian.initrd')]);
    expect(
      String(list.stdout)
        .split('\n')
        .some((l) => / init -> \/usr\/bin\/kata-agent$/.test(l)),
    ).toBe(true);
    const kernel = await guestKernel();
    // /proc/1/exe needs CAP_SYS_PTRACE, which a container lacks; comm does not. The kernel runs
    // /init (the agent) as "init"; an agent started by systemd would show up as "kata-agent".
    const script = 'cat /guest/os-release; echo "pid1=$(cat /guest/proc/1/comm)"; echo "all=$(cat /guest/proc/[0-9]*/comm | sort -u | tr "\\n" " ")"';
    const r = await runCli(
      [
        'boot',
        '--kernel',
        kernel,
        '--initrd',
        join(work, 'debian.initrd'),
        '--memory',
        '1024',
        '--timeout',
        '600',
        '--guest-mount',
        '/proc:/guest/proc',
        ...GUEST_OS_RELEASE.slice(0, 2),
        '--',
        'sh',
        '-c',
        script,
      ],
      { timeout: 15 * 60_000 },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(await readFile(join(work, 'debian-init/etc/os-release'), 'utf8'));
    expect(r.stdout).toMatch(/^pid1=init$/m);
    const all = /^all=(.*)$/m.exec(r.stdout)?.[1]?.split(' ').filter(Boolean) ?? [];
    expect(all).toContain('init');
    expect(all).not.toContain('systemd');
    expect(all).not.toContain('kata-agent');
  });
});
