/**
 * The distro × arch × format matrix a CI system fans out over: one row per
 * artifact osbuilder can build. Initrds need a distro that can run the agent
 * as init (Kata's AGENT_INIT); images work with either init mode.
 */
import { stringify } from 'yaml';
import { OsbuilderError } from '../core/errors.js';
import { ARCHES, ARCH_ALIASES, DISTROS, coverage, getDistro, type Arch, type Coverage, type DistroDefinition } from '../distros/index.js';

export interface MatrixRow {
  distro: string;
  version: string;
  arch: Arch;
  format: 'image' | 'initrd';
  /** booted: built and boot-tested by osbuilder's own tests; rendered: plan and Dockerfile tested only. */
  tested: Coverage;
}

/** The filter as given on the command line, checked: names and arch spellings (arm64, amd64, …). */
export function matrixFilter(distro: string[], arch: string[]): { distro: string[]; arch: Arch[] } {
  for (const d of distro) getDistro(d);
  const arches = arch.map((a) => {
    const hit = ARCH_ALIASES[a];
    if (!hit) throw new OsbuilderError('UNSUPPORTED_ARCH', `unknown architecture "${a}"`, `use one of ${ARCHES.join(', ')}`);
    return hit;
  });
  return { distro, arch: arches };
}

export type MatrixFormat = 'github' | 'gitlab' | 'json';

export function matrixRows(distros: readonly DistroDefinition[] = DISTROS, filter: { distro?: string[]; arch?: string[] } = {}): MatrixRow[] {
  const rows: MatrixRow[] = [];
  for (const d of distros) {
    if (filter.distro?.length && !filter.distro.includes(d.name)) continue;
    for (const arch of d.arches) {
      if (filter.arch?.length && !filter.arch.includes(arch)) continue;
      const row = (format: MatrixRow['format']): MatrixRow => ({ distro: d.name, version: d.defaultVersion, arch, format, tested: coverage(d.name, arch, format) });
      rows.push(row('image'));
      if (d.initModes.includes('agent-init')) rows.push(row('initrd'));
    }
  }
  return rows;
}

/** GitHub Actions `strategy.matrix` (include list), GitLab `parallel:matrix`, or the plain rows. */
export function renderMatrix(rows: MatrixRow[], format: MatrixFormat): string {
  switch (format) {
    case 'github':
      return JSON.stringify({ include: rows });
    case 'gitlab':
      return stringify({
        parallel: {
          matrix: rows.map((r) => ({ DISTRO: r.distro, OS_VERSION: r.version, ARCH: r.arch, FORMAT: r.format, TESTED: r.tested })),
        },
      });
    case 'json':
      return JSON.stringify(rows, null, 2);
  }
}
