import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { matrixRows, renderMatrix } from '../../pipeline/matrix.js';
import { DISTROS } from '../../distros/index.js';

describe('matrix', () => {
  it('has an image row per distro and arch, and initrd rows only where the agent can be init', () => {
    const rows = matrixRows();
    for (const d of DISTROS) {
      for (const arch of d.arches) {
        expect(rows).toContainEqual({ distro: d.name, version: d.defaultVersion, arch, format: 'image' });
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

  it('renders GitHub include lists and GitLab parallel:matrix', () => {
    const rows = matrixRows(undefined, { distro: ['debian'], arch: ['x86_64'] });
    expect(JSON.parse(renderMatrix(rows, 'github'))).toEqual({ include: rows });
    const gl = parse(renderMatrix(rows, 'gitlab')) as { parallel: { matrix: Array<Record<string, string>> } };
    expect(gl.parallel.matrix[0]).toEqual({ DISTRO: 'debian', OS_VERSION: rows[0]!.version, ARCH: 'x86_64', FORMAT: 'image' });
    expect(gl.parallel.matrix).toHaveLength(rows.length);
  });
});
