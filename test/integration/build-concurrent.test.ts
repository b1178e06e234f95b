/**
 * Builds sharing one cache: three `osbuilder build`s started at once with a
 * key no build has made before each succeed; each stage is built by one of
 * them and reused by the others (they wait on the entry's lock), and the three
 * installs hold identical artifacts.
 */
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import type { CacheListing } from '../../cli/commands/cache.js';
import type { BuildResult } from '../../pipeline/build.js';
import { makeTempDir } from '../support/fixtures.js';
import { KERNEL_SDE, seedKernelEntry } from '../support/kernel.js';

let work: string;
let cacheDir: string;

beforeAll(async () => {
  work = await makeTempDir('osb-concurrent-');
  cacheDir = join(work, 'cache');
  // The kernel entry only: the initrd, its agent, the boot test's container and the boot test are new.
  await seedKernelEntry(cacheDir);
});

afterAll(async () => {
  await execa('rm', ['-rf', work]);
});

/**
 * SHA256SUMS without the manifest (it records which build ran which stage) and
 * the configuration (it names its prefix), and the configuration with its prefix as <prefix>.
 */
async function installed(prefix: string): Promise<{ sums: string[]; config: string }> {
  const text = await readFile(join(prefix, 'usr/share/kata-containers/SHA256SUMS'), 'utf8');
  const config = await readFile(join(prefix, 'usr/share/defaults/kata-containers/configuration-qemu.toml'), 'utf8');
  return { sums: text.split('\n').filter((l) => l && !/(manifest\.json|\.toml)$/.test(l)), config: config.replaceAll(prefix, '<prefix>') };
}

describe('three builds at once on one cache', () => {
  it('all succeed, each stage is built once, the installs are identical', async () => {
    const env = { OSBUILDER_CACHE_DIR: cacheDir, SOURCE_DATE_EPOCH: KERNEL_SDE };
    const prefixes = ['a', 'b', 'c'].map((n) => join(work, n));
    const runs = await Promise.all(
      prefixes.map((p) =>
        runCli<BuildResult>(['build', 'busybox', '--initrd', '--kernel', '--prefix', p, '--boot-timeout', '900', '--json'], { env, timeout: 40 * 60_000 }),
      ),
    );
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);

    const row = (r: (typeof runs)[number], prefix: string) => r.json!.rows.find((x) => x.artifact.startsWith(prefix))!;
    expect(runs.map((r) => row(r, 'kata-busybox').cached).sort()).toEqual([false, true, true]);
    expect(runs.map((r) => row(r, 'vmlinuz').cached)).toEqual([true, true, true]);
    expect(runs.flatMap((r) => r.json!.bootTests.map((b) => `${b.passed} ${b.cached}`)).sort()).toEqual(['true false', 'true true', 'true true']);

    const [first, ...rest] = await Promise.all(prefixes.map(installed));
    expect(first!.sums.some((l) => / {2}usr\/share\/kata-containers\/kata-busybox-[\w.-]+\.initrd$/.test(l))).toBe(true);
    expect(first!.sums.some((l) => / {2}usr\/share\/kata-containers\/vmlinuz-[\w.-]+$/.test(l))).toBe(true);
    expect(first!.config).toContain('<prefix>/usr/share/kata-containers/vmlinuz.container');
    for (const other of rest) expect(other).toEqual(first);
    const ls = await runCli<CacheListing>(['cache', 'ls', '--json'], { env });
    expect(ls.json!.leftovers).toEqual([]);
  });
});
