/**
 * `osbuilder matrix` output runs as it is: the GitLab pipeline passes
 * gitlab-ci-local's validation (GitLab's own JSON schema for .gitlab-ci.yml)
 * and expands into one job per row; a cell's command line, taken verbatim
 * from the rows, builds, boot-tests and installs its artifact on its own.
 * (The GitHub workflow is checked by actionlint in the unit tests.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, repoRoot, runCli } from '../support/cli.js';
import type { MatrixRow } from '../../pipeline/matrix.js';
import { makeTempDir } from '../support/fixtures.js';
import { KERNEL_SDE, seedKernelEntry } from '../support/kernel.js';

let work: string;

beforeAll(async () => {
  work = await makeTempDir('osb-matrix-ci-');
});

/** gitlab-ci-local on `text` as .gitlab-ci.yml in a fresh git repo: its exit code, output and jobs. */
async function gitlabCiLocal(text: string): Promise<{ exitCode: number; output: string; jobs: Array<{ name: string; stage: string }> }> {
  const dir = join(work, `gitlab-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  await execa('git', ['init', '-q'], { cwd: dir });
  await writeFile(join(dir, '.gitlab-ci.yml'), text);
  const r = await execa(join(repoRoot, 'node_modules/.bin/gitlab-ci-local'), ['--list-json'], { cwd: dir, reject: false, all: true, timeout: 120_000 });
  const json = /^\[[\s\S]*\]$/m.exec(String(r.stdout))?.[0];
  return { exitCode: r.exitCode ?? -1, output: String(r.all), jobs: json ? (JSON.parse(json) as Array<{ name: string; stage: string }>) : [] };
}

describe('osbuilder matrix --format gitlab', () => {
  it("passes GitLab's schema (gitlab-ci-local) and expands into one job per row; a bad key fails it", async () => {
    const rows = (await runCli<{ rows: MatrixRow[] }>(['matrix', '--json'])).json!.rows;
    const text = (await runCli(['matrix', '--format', 'gitlab'])).stdout;
    const ok = await gitlabCiLocal(text);
    expect(ok.exitCode, ok.output).toBe(0);
    expect(ok.output).toMatch(/json schema validated/);
    expect(ok.jobs).toHaveLength(rows.length);
    expect(ok.jobs.every((j) => j.stage === 'build' && j.name.startsWith('build: ['))).toBe(true);
    const bad = await gitlabCiLocal(text.replace('  timeout: 90m', '  timeout: 90m\n  artifactz: {}'));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.output).toMatch(/'artifactz' property is not expected to be here/);
  });
});

describe('a matrix cell on its own', () => {
  it('the busybox x86_64 initrd cell, run verbatim in a fresh checkout dir, builds, boot-tests and installs under ./out', async () => {
    const rows = (await runCli<{ rows: MatrixRow[] }>(['matrix', '--json', '--distro', 'busybox', '--arch', 'x86_64'])).json!.rows;
    const cell = rows.find((r) => r.format === 'initrd')!;
    const [bin, ...args] = cell.command.split(' ');
    expect(bin).toBe('osbuilder');
    const cwd = join(work, 'cell');
    const cache = join(work, 'cell-cache');
    await mkdir(cwd);
    await seedKernelEntry(cache); // the suite's kernel: a CI cache would hold it the same way
    const r = await execa('node', [cliPath, ...args, '--json'], {
      cwd,
      reject: false,
      env: { OSBUILDER_CACHE_DIR: cache, SOURCE_DATE_EPOCH: KERNEL_SDE },
      timeout: 30 * 60_000,
    });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const j = JSON.parse(String(r.stdout)) as { shareDir: string; bootTests: Array<{ passed: boolean; artifact: string }> };
    expect(j.shareDir).toBe(join(cwd, 'out/usr/share/kata-containers'));
    expect(j.bootTests).toEqual([expect.objectContaining({ passed: true, artifact: 'kata-busybox-bookworm.initrd' })]);
    const manifest = JSON.parse(await readFile(join(j.shareDir, 'manifest.json'), 'utf8')) as { bootTested: boolean };
    expect(manifest.bootTested).toBe(true);
  });
});
