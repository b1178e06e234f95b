import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { matrixFilter, matrixRows, renderMatrix } from '../../pipeline/matrix.js';
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

  it('renders GitHub include lists and GitLab parallel:matrix', () => {
    const rows = matrixRows(undefined, { distro: ['debian'], arch: ['x86_64'] });
    expect(JSON.parse(renderMatrix(rows, 'github'))).toEqual({ include: rows });
    const gl = parse(renderMatrix(rows, 'gitlab')) as { parallel: { matrix: Array<Record<string, string>> } };
    expect(gl.parallel.matrix[0]).toEqual({ DISTRO: 'debian', OS_VERSION: rows[0]!.version, ARCH: 'x86_64', FORMAT: 'image', TESTED: 'booted' });
    expect(gl.parallel.matrix).toHaveLength(rows.length);
  });

  it('says which rows the tests build and boot, and which are rendered only', () => {
    const tested = Object.fromEntries(matrixRows().map((r) => [`${r.distro}/${r.arch}/${r.format}`, r.tested]));
    expect(Object.entries(tested).filter(([, t]) => t === 'booted').map(([k]) => k).sort()).toEqual(['busybox/x86_64/initrd', 'debian/x86_64/image', 'debian/x86_64/initrd']);
    expect(tested['debian/aarch64/image']).toBe('rendered');
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
