/**
 * aarch64 on this x86_64 host, without emulation in the build: the busybox
 * rootfs from Debian's busybox-static:arm64 with the cross-compiled agent as
 * init, packed into an initrd. Every binary is checked by its ELF header, and
 * the busybox taken from the initrd runs under qemu-aarch64.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAgentBinary } from '../../agent/index.js';
import { ARCH_FACTS } from '../../core/arch.js';
import { parseElf, type BuildRootfsResult } from '../../rootfs-builder/index.js';
import { runCli, type CliResult } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { cpioExtract, decompressTo } from '../support/initrd.js';
import { buildDist } from '../support/rootfs.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const SDE = '1700000000';

let work: string;
let agent: string;
let rootfs: CliResult<BuildRootfsResult>;

async function elf(path: string) {
  return parseElf(await readFile(path));
}

beforeAll(async () => {
  await buildDist();
  work = await makeTempDir('osb-rootfs-aarch64-');
  agent = (await defaultAgentBinary({ arch: 'aarch64' })).path;
  rootfs = await runCli<BuildRootfsResult>(
    ['rootfs', 'busybox', '--arch', 'arm64', '--bootstrap-base', '--agent', agent, '-o', join(work, 'rootfs'), '--json'],
    { env: { SOURCE_DATE_EPOCH: SDE }, timeout: 20 * 60_000 },
  );
}, 25 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('busybox rootfs for aarch64 on x86_64', () => {
  const dir = () => join(work, 'rootfs');

  it('is built from busybox-static:arm64 by an x86_64 builder (no emulation), the agent as init', async () => {
    expect(rootfs.exitCode, rootfs.stderr).toBe(0);
    expect(rootfs.json).toMatchObject({ distro: 'busybox', arch: 'aarch64', initMode: 'agent-init' });
    // The builder is an amd64 image: busybox-static:arm64 is unpacked, never run.
    expect((await execa('docker', ['image', 'inspect', '--format', '{{.Architecture}}', rootfs.json!.builderImage!])).stdout).toBe('amd64');
    expect(await readlink(join(dir(), 'sbin/init'))).toBe('/usr/bin/kata-agent');
    expect(await readFile(join(dir(), 'var/lib/osbuilder/packages.txt'), 'utf8')).toMatch(/^busybox-static=1:1\.\d+/m);
  });

  it('holds only aarch64 static executables: busybox and the agent', async () => {
    for (const f of ['bin/busybox', 'usr/bin/kata-agent']) {
      const e = await elf(join(dir(), f));
      expect(e, f).toMatchObject({ machine: ARCH_FACTS.aarch64.elfMachine, class: 64, endian: 'little' });
      expect(e!.interpreter, f).toBeUndefined();
    }
    expect((await readFile(join(dir(), 'usr/bin/kata-agent'))).equals(await readFile(agent))).toBe(true);
  });

  it('packs into an initrd whose /init is the aarch64 agent and whose busybox runs under qemu-aarch64', async () => {
    const out = join(work, 'kata-busybox-aarch64.initrd');
    const r = await runCli(['initrd', dir(), '-o', out, '--compression', 'gzip', '--json'], { env: { SOURCE_DATE_EPOCH: SDE } });
    expect(r.exitCode, r.stderr).toBe(0);
    const cpio = join(work, 'initrd.cpio');
    await decompressTo(out, 'gzip', cpio);
    const x = join(work, 'extracted');
    await mkdir(x);
    await cpioExtract(cpio, x);
    expect(await readlink(join(x, 'init'))).toBe('/usr/bin/kata-agent');
    expect(await elf(join(x, 'usr/bin/kata-agent'))).toMatchObject({ machine: 183 });
    expect(await elf(join(x, 'bin/busybox'))).toMatchObject({ machine: 183 });
    const run = await execa(ARCH_FACTS.aarch64.qemuUser, [join(x, 'bin/busybox'), 'uname', '-m']);
    expect(run.stdout).toBe('aarch64');
  });
});
