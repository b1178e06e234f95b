/**
 * SIGKILL (an OOM kill, a CI timeout) leaves no handler a chance to run. At
 * five moments of `osbuilder build` — a rootfs container, the image, the
 * initrd, the kernel source extraction, a boot test — the build is killed,
 * then the same build is run again: it succeeds, and nothing the killed run
 * started is left (cache temp paths, locks, holds, work dirs, its containers,
 * its QEMU, staged install trees).
 */
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath, repoRoot, runCli } from '../support/cli.js';
import type { CacheListing } from '../../cli/commands/cache.js';
import type { BuildResult } from '../../pipeline/build.js';
import { makeTempDir } from '../support/fixtures.js';
import { KERNEL_SDE, seedKernelEntry } from '../support/kernel.js';
import { qemuNamed } from '../support/procs.js';
import { buildContainers } from '../support/rootfs.js';

let work: string;
let cacheDir: string;

beforeAll(async () => {
  work = await makeTempDir('osb-kill-');
  cacheDir = join(work, 'cache');
  await seedKernelEntry(cacheDir);
});

afterAll(async () => {
  await execa('rm', ['-rf', work]);
});

/**
 * Runs `osbuilder --debug <args>` and SIGKILLs it once `ready(pid, stderr)`
 * holds (checked on every output chunk and every 100 ms); returns its pid.
 */
async function killWhen(args: string[], env: Record<string, string>, ready: (pid: number, stderr: string) => Promise<boolean> | boolean): Promise<number> {
  const child = execa('node', [cliPath, '--debug', ...args], { reject: false, cwd: repoRoot, env, timeout: 20 * 60_000, buffer: false });
  const pid = child.pid!;
  let stderr = '';
  let exited = false;
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString('utf8')));
  void child.finally(() => (exited = true));
  while (!exited && !(await ready(pid, stderr))) await new Promise((r) => setTimeout(r, 100));
  expect(exited, `the build ended before the moment to kill it:\n${stderr.slice(-2000)}`).toBe(false);
  child.kill('SIGKILL');
  const r = await child;
  expect(r.signal).toBe('SIGKILL');
  return pid;
}

/** The same build again, with --json: it must succeed. */
async function rerun(args: string[], env: Record<string, string>) {
  const r = await runCli<BuildResult>([...args, '--json'], { env, timeout: 20 * 60_000 });
  expect(r.exitCode, r.stderr).toBe(0);
  return r;
}

/** What is left in the cache and the prefix, and of what the killed process `pid` started. */
async function leftOf(pid: number, cache: string, prefix: string) {
  const ls = await runCli<CacheListing>(['cache', 'ls', '--json'], { env: { OSBUILDER_CACHE_DIR: cache } });
  const staged = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).filter((n) => n.includes('.staged-'));
  return {
    cache: ls.json!.leftovers.map((l) => l.path),
    staged: [...(await staged(join(prefix, 'usr/share'))), ...(await staged(join(prefix, 'usr/share/defaults')))],
    containers: await buildContainers(pid),
    vms: (await qemuNamed(`osbuilder-vm-${pid}-`, { prefix: true })).map((p) => `${p.pid} ${p.state}`),
  };
}

const NOTHING = { cache: [], staged: [], containers: [], vms: [] };

describe('SIGKILL, then the same build again', () => {
  // Each with its own epoch: a key no earlier case built. Kills by what the build shows: its container, or the command it starts.
  it.each([
    ['a rootfs container runs', '--initrd', '1700000101', async (pid: number) => (await buildContainers(pid)).length > 0],
    ['the image is written', '--image', '1700000102', (_pid: number, stderr: string) => /debug: \$ mke2fs /.test(stderr)],
    ['the initrd is written', '--initrd', '1700000103', (_pid: number, stderr: string) => /debug: \$ zstd /.test(stderr)],
  ] as const)('while %s', async (_moment, artifact, sde, ready) => {
    const p = join(work, `p-${sde}`);
    const args = ['build', 'busybox', artifact, '--no-boot-test', '--prefix', p];
    const env = { OSBUILDER_CACHE_DIR: cacheDir, SOURCE_DATE_EPOCH: sde };
    const pid = await killWhen(args, env, ready);
    await rerun(args, env);
    expect(await leftOf(pid, cacheDir, p)).toEqual(NOTHING);
  });

  it('while the kernel source is extracted', async () => {
    const cold = join(work, 'cold-cache');
    const p = join(work, 'p-kernel');
    const args = ['build', '--kernel', '--no-boot-test', '--prefix', p];
    const env = { OSBUILDER_CACHE_DIR: cold, SOURCE_DATE_EPOCH: KERNEL_SDE };
    const trees = join(cold, 'kernel-trees');
    const pid = await killWhen(args, env, async () => (await readdir(trees).catch(() => [] as string[])).some((n) => n.includes('.extract-')));
    // The rerun finds the kernel in the cache (seeded: no 10-minute compile) and removes the partial tree.
    await seedKernelEntry(cold);
    await rerun(args, env);
    expect(await leftOf(pid, cold, p)).toEqual(NOTHING);
    expect((await readdir(trees)).filter((n) => /\.(new|extract)-/.test(n))).toEqual([]);
  });

  it('during a boot test: the kernel kills its QEMU with it', async () => {
    const p = join(work, 'p-boot');
    const args = ['build', 'busybox', '--initrd', '--kernel', '--prefix', p, '--boot-timeout', '600'];
    const env = { OSBUILDER_CACHE_DIR: cacheDir, SOURCE_DATE_EPOCH: KERNEL_SDE };
    const pid = await killWhen(args, env, async (pid) => (await qemuNamed(`osbuilder-vm-${pid}-`, { prefix: true })).length > 0);
    // PR_SET_PDEATHSIG: the kernel sends QEMU SIGKILL when its parent dies; it is gone once reaped by init.
    for (let i = 0; i < 50 && (await qemuNamed(`osbuilder-vm-${pid}-`, { prefix: true })).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    expect((await qemuNamed(`osbuilder-vm-${pid}-`, { prefix: true })).map((q) => `${q.pid} ${q.state}`)).toEqual([]);
    const r = await rerun(args, env);
    expect(r.json!.bootTests).toEqual([expect.objectContaining({ passed: true, cached: false })]);
    expect(await leftOf(pid, cacheDir, p)).toEqual(NOTHING);
  });
});
