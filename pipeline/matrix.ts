/**
 * The distro × arch × format matrix a CI system fans out over: one row per
 * artifact osbuilder can build. Initrds need a distro that can run the agent
 * as init (Kata's AGENT_INIT); images work with either init mode.
 */
import { stringify } from 'yaml';
import { DISTROS, type Arch, type DistroDefinition } from '../distros/index.js';

export interface MatrixRow {
  distro: string;
  version: string;
  arch: Arch;
  format: 'image' | 'initrd';
}

export type MatrixFormat = 'github' | 'gitlab' | 'json';

export function matrixRows(distros: readonly DistroDefinition[] = DISTROS, filter: { distro?: string[]; arch?: string[] } = {}): MatrixRow[] {
  const rows: MatrixRow[] = [];
  for (const d of distros) {
    if (filter.distro?.length && !filter.distro.includes(d.name)) continue;
    for (const arch of d.arches) {
      if (filter.arch?.length && !filter.arch.includes(arch)) continue;
      rows.push({ distro: d.name, version: d.defaultVersion, arch, format: 'image' });
      if (d.initModes.includes('agent-init')) rows.push({ distro: d.name, version: d.defaultVersion, arch, format: 'initrd' });
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
          matrix: rows.map((r) => ({ DISTRO: r.distro, OS_VERSION: r.version, ARCH: r.arch, FORMAT: r.format })),
        },
      });
    case 'json':
      return JSON.stringify(rows, null, 2);
  }
}
