/**
 * Config fragments: parsing, selection for an arch/variant, merging (later
 * fragments win, overrides reported), the ignore list, the config version and
 * a content hash of everything that shapes the config.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OsbuilderError } from '../core/errors.js';
import { sha256 } from '../core/hash.js';
import { ARCH_FACTS, type Arch } from '../core/arch.js';
import { KERNEL_ARCH } from './arch.js';

export const FRAGMENTS_DIR = fileURLToPath(new URL('./fragments/', import.meta.url));

export interface Requested {
  symbol: string;
  /** 'y' | 'm' | 'n' (for "is not set") | a number | a quoted string (kept quoted). */
  value: string;
  file: string;
  line: number;
}

export interface Fragment {
  /** Path relative to the fragments dir, or the user's path for --fragment. */
  name: string;
  text: string;
  /** From a `# arch:` header: undefined = every arch. */
  arches?: { only: string[]; not: string[] };
  entries: Requested[];
}

const SET_RE = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$/;
const ARCH_RE = /^#\s*arch:\s*(.+)$/;

function validValue(v: string): boolean {
  return /^(y|m|n|-?\d+|0x[0-9a-fA-F]+)$/.test(v) || /^"(?:[^"\\]|\\.)*"$/.test(v);
}

/** Parses one fragment; malformed lines are KERNEL_CONFIG errors naming file:line. */
export function parseFragment(name: string, text: string): Fragment {
  const entries: Requested[] = [];
  let arches: Fragment['arches'];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, idx) => {
    const line = raw.trim();
    const lineNo = idx + 1;
    if (!line) return;
    const archHdr = ARCH_RE.exec(line);
    if (archHdr) {
      const items = archHdr[1]!.trim().split(/[\s,]+/);
      arches = { only: items.filter((a) => !a.startsWith('!')), not: items.filter((a) => a.startsWith('!')).map((a) => a.slice(1)) };
      return;
    }
    const unset = UNSET_RE.exec(line);
    const set = SET_RE.exec(line);
    let entry: Requested | undefined;
    if (unset) entry = { symbol: unset[1]!, value: 'n', file: name, line: lineNo };
    else if (set) {
      const value = set[2]!.trim();
      if (!validValue(value)) {
        throw new OsbuilderError(
          'KERNEL_CONFIG',
          `${name}:${lineNo}: bad value in ${JSON.stringify(line)}`,
          'use CONFIG_X=y, =m, =<number>, ="string" or "# CONFIG_X is not set"',
        );
      }
      entry = { symbol: set[1]!, value, file: name, line: lineNo };
    } else if (line.startsWith('#')) return;
    else {
      throw new OsbuilderError(
        'KERNEL_CONFIG',
        `${name}:${lineNo}: not a config line: ${JSON.stringify(line)}`,
        'fragment lines are CONFIG_X=value, "# CONFIG_X is not set", comments or blank',
      );
    }
    const prev = seen.get(entry.symbol);
    if (prev !== undefined) {
      throw new OsbuilderError(
        'KERNEL_CONFIG',
        `${name}:${lineNo}: CONFIG_${entry.symbol} is already set on line ${prev}`,
        'keep one line per option in a fragment',
      );
    }
    seen.set(entry.symbol, lineNo);
    entries.push(entry);
  });
  return { name, text, arches, entries };
}

/** Whether a fragment's `# arch:` header admits `arch`. */
export function archMatches(arches: Fragment['arches'], arch: Arch): boolean {
  if (!arches) return true;
  const names = [arch, ARCH_FACTS[arch].kernelArch, ARCH_FACTS[arch].srcarch];
  if (arches.not.some((a) => names.includes(a))) return false;
  return arches.only.length === 0 || arches.only.some((a) => names.includes(a));
}

function confFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((f) => f.endsWith('.conf') && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => join(dir, f));
}

export interface FragmentSelection {
  arch: Arch;
  gpu?: 'nvidia';
  confidential?: 'tdx' | 'sev' | 'snp';
  /** User fragments (paths), merged last in the order given. */
  extra?: string[];
  /** Fragments directory (tests point this at a fixture tree). */
  dir?: string;
}

/** The fragments that apply, in merge order. */
export function selectFragments(sel: FragmentSelection): Fragment[] {
  const dir = sel.dir ?? FRAGMENTS_DIR;
  const files = [...confFiles(join(dir, 'common')), ...confFiles(join(dir, KERNEL_ARCH[sel.arch].fragmentDir))];
  if (sel.gpu) files.push(...confFiles(join(dir, 'gpu', sel.gpu)));
  if (sel.confidential) files.push(...confFiles(join(dir, 'confidential', sel.confidential)));
  const out: Fragment[] = [];
  for (const f of files) {
    const frag = parseFragment(relative(dir, f), readFileSync(f, 'utf8'));
    if (archMatches(frag.arches, sel.arch)) out.push(frag);
  }
  if (sel.confidential && !out.some((f) => f.name.startsWith(`confidential/${sel.confidential}/`))) {
    throw new OsbuilderError('UNSUPPORTED', `--confidential ${sel.confidential} has no fragments for ${sel.arch}`, 'TDX, SEV and SNP guests are x86_64 only');
  }
  for (const path of sel.extra ?? []) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new OsbuilderError('INPUT_NOT_FOUND', `fragment ${path} cannot be read`, 'give the path of a kernel config fragment file (CONFIG_X=y lines)');
    }
    out.push(parseFragment(path, text));
  }
  return out;
}

export interface Override {
  symbol: string;
  from: Requested;
  to: Requested;
}

export interface MergedFragments {
  fragments: string[];
  /** Final request per symbol, in first-seen order. */
  requested: Requested[];
  /** Same symbol given different values: the later fragment won. */
  overrides: Override[];
}

/** Merges fragments: for each symbol the last fragment wins; different values are reported. */
export function mergeFragments(fragments: Fragment[]): MergedFragments {
  const bySymbol = new Map<string, Requested>();
  const overrides: Override[] = [];
  for (const frag of fragments) {
    for (const e of frag.entries) {
      const prev = bySymbol.get(e.symbol);
      if (prev && prev.value !== e.value) overrides.push({ symbol: e.symbol, from: prev, to: e });
      if (prev) bySymbol.delete(e.symbol); // re-insert: order follows the winning line
      bySymbol.set(e.symbol, e);
    }
  }
  return { fragments: fragments.map((f) => f.name), requested: [...bySymbol.values()], overrides };
}

/** `.config` lines for requested values (what gets merged onto the base). */
export function renderRequested(requested: Requested[]): string {
  return `${requested.map((r) => (r.value === 'n' ? `# CONFIG_${r.symbol} is not set` : `CONFIG_${r.symbol}=${r.value}`)).join('\n')}\n`;
}

export interface IgnoreEntry {
  symbol: string;
  reason: string;
  line: number;
}

/** ignore.list: `CONFIG_X <reason>` per line; a reason is required. */
export function parseIgnoreList(text: string, name = 'ignore.list'): Map<string, IgnoreEntry> {
  const out = new Map<string, IgnoreEntry>();
  text.split('\n').forEach((raw, idx) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^CONFIG_([A-Za-z0-9_]+)\s+(\S.*)$/.exec(line);
    if (!m) {
      throw new OsbuilderError(
        'KERNEL_CONFIG',
        `${name}:${idx + 1}: expected "CONFIG_X <reason>", got ${JSON.stringify(line)}`,
        'every ignored option needs a reason on the same line',
      );
    }
    out.set(m[1]!, { symbol: m[1]!, reason: m[2]!, line: idx + 1 });
  });
  return out;
}

export function readIgnoreList(dir = FRAGMENTS_DIR): Map<string, IgnoreEntry> {
  return parseIgnoreList(readFileSync(join(dir, 'ignore.list'), 'utf8'));
}

/** Kata's kata_config_version: a positive integer. */
export function readConfigVersion(dir = FRAGMENTS_DIR): string {
  const v = readFileSync(join(dir, 'kata_config_version'), 'utf8').trim();
  if (!/^\d+$/.test(v))
    throw new OsbuilderError(
      'KERNEL_CONFIG',
      `kata_config_version is ${JSON.stringify(v)}, not a number`,
      'write a single integer into kernel/fragments/kata_config_version',
    );
  return v;
}

/** Every file under the fragments dir except kata_config_version and docs, sorted. */
export function fragmentFiles(dir = FRAGMENTS_DIR): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== 'kata_config_version' && !e.name.endsWith('.md')) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** sha256 over every fragment file's path and content (the config's recipe). */
export function fragmentsHash(dir = FRAGMENTS_DIR): string {
  const parts = fragmentFiles(dir).map((f) => `${f}\0${readFileSync(join(dir, f), 'utf8')}\0`);
  return sha256(parts.join(''));
}

/** Hash of a selection including user fragments (cache keys). */
export function selectionHash(fragments: Fragment[]): string {
  return sha256(fragments.map((f) => `${basename(f.name)}\0${f.text}\0`).join(''));
}
