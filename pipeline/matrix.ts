/**
 * The distro × arch × format matrix a CI system fans out over: one row per
 * artifact osbuilder can build, each with the one `osbuilder build` command
 * line that builds, boot-tests and installs it on its own. Initrds need a
 * distro that can run the agent as init (Kata's AGENT_INIT); images work with
 * either init mode. Rendered as a whole GitHub Actions workflow or GitLab CI
 * pipeline that runs as it is, or as plain rows.
 */
import { stringify } from 'yaml';
import { isGuestArch, parseArch, type Arch } from '../core/arch.js';
import { DISTROS, coverage, getDistro, type Coverage, type DistroDefinition } from '../distros/index.js';

export interface MatrixRow {
  distro: string;
  version: string;
  arch: Arch;
  format: 'image' | 'initrd';
  /** booted: built and boot-tested by osbuilder's own tests; built: built and checked, not booted; rendered: plan and Dockerfile tested only. */
  tested: Coverage;
  /** The cell: one `osbuilder build` command line (the kernel is built with it, so it boot-tests on its own). */
  command: string;
}

/** Where a cell's install lands, relative to the checkout. */
export const CELL_PREFIX = 'out';

/** The filter as given on the command line, checked: names and arch spellings (arm64, amd64, …). */
export function matrixFilter(distro: string[], arch: string[]): { distro: string[]; arch: Arch[] } {
  for (const d of distro) getDistro(d);
  return { distro, arch: arch.map((a) => parseArch(a)) };
}

export type MatrixFormat = 'github' | 'gitlab' | 'json';

/** The cell's command line; an arch osbuilder cannot boot (ppc64le, s390x) is built with --no-boot-test. */
export function cellCommand(r: Pick<MatrixRow, 'distro' | 'version' | 'arch' | 'format'>): string {
  const bootable = isGuestArch(r.arch);
  return [
    'osbuilder',
    'build',
    r.distro,
    `--${r.format}`,
    '--kernel',
    '--os-version',
    r.version,
    '--arch',
    r.arch,
    '--prefix',
    CELL_PREFIX,
    ...(bootable ? [] : ['--no-boot-test']),
  ].join(' ');
}

export function matrixRows(distros: readonly DistroDefinition[] = DISTROS, filter: { distro?: string[]; arch?: string[] } = {}): MatrixRow[] {
  const rows: MatrixRow[] = [];
  for (const d of distros) {
    if (filter.distro?.length && !filter.distro.includes(d.name)) continue;
    for (const arch of d.arches) {
      if (filter.arch?.length && !filter.arch.includes(arch)) continue;
      const row = (format: MatrixRow['format']): MatrixRow => {
        const cell = { distro: d.name, version: d.defaultVersion, arch, format };
        return { ...cell, tested: coverage(d.name, arch, format), command: cellCommand(cell) };
      };
      rows.push(row('image'));
      if (d.initModes.includes('agent-init')) rows.push(row('initrd'));
    }
  }
  return rows;
}

/** GitHub-hosted runners exist for x86_64 and arm64; other arches need a self-hosted runner with the arch's label. */
export function githubRunner(arch: Arch): string | string[] {
  if (arch === 'x86_64') return 'ubuntu-24.04';
  if (arch === 'aarch64') return 'ubuntu-24.04-arm';
  return ['self-hosted', 'linux', arch];
}

/** GitLab: a root shell runner (osbuilder needs Docker, QEMU and apt) registered with this tag. */
export const gitlabRunnerTag = (arch: Arch) => `kata-osbuilder-${arch}`;

const artifactName = (r: { distro: string; version: string; arch: string; format: string }) => `kata-${r.distro}-${r.version}-${r.arch}-${r.format}`;

/** A workflow: one job per row; each sets up the host (scripts/setup-host.sh), links `osbuilder` and runs its cell. */
function githubWorkflow(rows: MatrixRow[]): string {
  const include = rows.map((r) => ({ ...r, runner: githubRunner(r.arch), artifact: artifactName(r) }));
  const workflow = {
    name: 'kata-osbuilder',
    on: { workflow_dispatch: null, push: { branches: ['main'] } },
    jobs: {
      build: {
        name: '${{ matrix.distro }} ${{ matrix.version }} ${{ matrix.arch }} ${{ matrix.format }}',
        'runs-on': '${{ matrix.runner }}',
        'timeout-minutes': 90,
        strategy: { 'fail-fast': false, matrix: { include } },
        steps: [
          { uses: 'actions/checkout@v4' },
          { uses: 'actions/setup-node@v4', with: { 'node-version': 22 } },
          { name: 'Set up the host (apt packages, dockerd, npm ci, build)', run: 'sudo env "PATH=$PATH" bash scripts/setup-host.sh' },
          { name: 'Put osbuilder on the PATH', run: 'npm link' },
          { name: 'Build, boot-test and install', run: 'sudo env "PATH=$PATH" ${{ matrix.command }}' },
          { uses: 'actions/upload-artifact@v4', with: { name: '${{ matrix.artifact }}', path: `${CELL_PREFIX}/usr/share` } },
        ],
      },
    },
  };
  return stringify(workflow, { lineWidth: 0 });
}

/** A pipeline: one job, parallel:matrix over the rows, each cell's command line in OSBUILDER_BUILD. */
function gitlabPipeline(rows: MatrixRow[]): string {
  const pipeline = {
    stages: ['build'],
    build: {
      stage: 'build',
      tags: ['$RUNNER_TAG'],
      timeout: '90m',
      parallel: {
        matrix: rows.map((r) => ({
          DISTRO: r.distro,
          OS_VERSION: r.version,
          ARCH: r.arch,
          FORMAT: r.format,
          TESTED: r.tested,
          RUNNER_TAG: gitlabRunnerTag(r.arch),
          OSBUILDER_BUILD: r.command,
        })),
      },
      script: ['bash scripts/setup-host.sh', 'npm link', '$OSBUILDER_BUILD'],
      artifacts: { name: 'kata-$DISTRO-$OS_VERSION-$ARCH-$FORMAT', paths: [`${CELL_PREFIX}/usr/share`] },
    },
  };
  return stringify(pipeline, { lineWidth: 0 });
}

/** A whole GitHub Actions workflow, a whole GitLab CI pipeline, or the plain rows. */
export function renderMatrix(rows: MatrixRow[], format: MatrixFormat): string {
  switch (format) {
    case 'github':
      return githubWorkflow(rows);
    case 'gitlab':
      return gitlabPipeline(rows);
    case 'json':
      return JSON.stringify(rows, null, 2);
  }
}
