/**
 * Parity with Kata's guest kernel, offline: every symbol Kata's fragments
 * enable for an arch (kernel/fragments/kata-parity/<arch>.symbols, names read
 * from a pinned Kata commit) is enabled by our merged fragments for that arch,
 * or excluded with a reason in kernel/fragments/parity-exclusions.list.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Arch } from '../../core/arch.js';
import { FRAGMENTS_DIR, mergeFragments, selectFragments } from '../../kernel/fragments.js';

const ARCHES: Arch[] = ['x86_64', 'aarch64', 'ppc64le', 's390x'];

interface Exclusion {
  symbol: string;
  /** undefined: every arch. */
  arches?: Arch[];
  reason: string;
  line: number;
}

function dataLines(text: string): Array<{ text: string; line: number }> {
  return text
    .split('\n')
    .map((raw, idx) => ({ text: raw.trim(), line: idx + 1 }))
    .filter((l) => l.text && !l.text.startsWith('#'));
}

function kataSymbols(arch: Arch): { commit: string | undefined; symbols: string[] } {
  const text = readFileSync(join(FRAGMENTS_DIR, 'kata-parity', `${arch}.symbols`), 'utf8');
  return { commit: /kata-containers\/kata-containers@([0-9a-f]{40})/.exec(text)?.[1], symbols: dataLines(text).map((l) => l.text) };
}

/** `CONFIG_X [@arch,...] <reason>` per line. */
function exclusions(): Exclusion[] {
  return dataLines(readFileSync(join(FRAGMENTS_DIR, 'parity-exclusions.list'), 'utf8')).map(({ text, line }) => {
    const m = /^CONFIG_([A-Za-z0-9_]+)(?:\s+@([\w,]+))?\s+(\S.*)$/.exec(text);
    expect(m, `parity-exclusions.list:${line}: expected "CONFIG_X [@arch,...] <reason>", got ${JSON.stringify(text)}`).toBeTruthy();
    return { symbol: m![1]!, arches: m![2]?.split(',') as Arch[] | undefined, reason: m![3]!, line };
  });
}

function enabled(arch: Arch, gpu?: 'nvidia'): Set<string> {
  return new Set(
    mergeFragments(selectFragments({ arch, gpu }))
      .requested.filter((r) => r.value !== 'n')
      .map((r) => r.symbol),
  );
}

function excludedFor(arch: Arch): Set<string> {
  return new Set(
    exclusions()
      .filter((e) => !e.arches || e.arches.includes(arch))
      .map((e) => e.symbol),
  );
}

describe('kernel parity with Kata', () => {
  it('stores the symbol names of every arch, with the Kata commit they were read from', () => {
    const commits = new Set<string | undefined>();
    for (const arch of ARCHES) {
      const { commit, symbols } = kataSymbols(arch);
      commits.add(commit);
      expect(symbols.length, arch).toBeGreaterThan(500);
      for (const s of symbols) expect(s, `${arch}.symbols`).toMatch(/^[A-Z0-9_]+$/);
      expect(new Set(symbols).size, `${arch}.symbols has duplicates`).toBe(symbols.length);
    }
    expect([...commits]).toHaveLength(1);
    expect([...commits][0]).toBeDefined();
  });

  it('every exclusion has a reason, known arches, and names a symbol Kata enables there that we leave out', () => {
    const seen = new Set<string>();
    for (const e of exclusions()) {
      const where = `parity-exclusions.list:${e.line} CONFIG_${e.symbol}`;
      expect(e.reason.length, where).toBeGreaterThan(10);
      expect(seen.has(e.symbol), `${where} is listed twice`).toBe(false);
      seen.add(e.symbol);
      for (const a of e.arches ?? []) expect(ARCHES, where).toContain(a);
      const arches = e.arches ?? ARCHES.filter((a) => kataSymbols(a).symbols.includes(e.symbol));
      expect(arches.length, `${where}: Kata enables it on no arch`).toBeGreaterThan(0);
      for (const a of arches) {
        expect(kataSymbols(a).symbols, `${where}: Kata does not enable it on ${a}`).toContain(e.symbol);
        expect(enabled(a).has(e.symbol), `${where}: our fragments enable it on ${a}, drop the exclusion`).toBe(false);
      }
    }
  });

  for (const arch of ARCHES) {
    it(`${arch}: our default fragments enable every option Kata's enable, or exclude it with a reason`, () => {
      const ours = enabled(arch);
      const excluded = excludedFor(arch);
      const missing = kataSymbols(arch).symbols.filter((s) => !ours.has(s) && !excluded.has(s));
      expect(missing, 'enable these in kernel/fragments (grouped by purpose) or list them in parity-exclusions.list with a reason').toEqual([]);
    });

    it(`${arch}: the GPU variant keeps the parity set (FIPS mode aside: 6.1 would need signed modules)`, () => {
      const base = enabled(arch);
      const gpu = enabled(arch, 'nvidia');
      expect([...base].filter((s) => !gpu.has(s))).toEqual(['CRYPTO_FIPS']);
    });
  }
});
