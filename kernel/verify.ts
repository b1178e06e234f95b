/**
 * Verification: every requested option is compared with the final .config that
 * `make olddefconfig` produced. A dropped or changed option gets its reasons
 * from the Kconfig tree: which `depends on` / enclosing `if`/`menu` conditions
 * are unmet, a hidden or missing prompt (only `select` can set it, and nothing
 * enabled selects it), `select`s forcing an unwanted option on, choices, ranges.
 */
import { OsbuilderError } from '../core/errors.js';
import type { IgnoreEntry, Override, Requested } from './fragments.js';
import {
  conjuncts,
  evalExpr,
  exprSymbols,
  formatExpr,
  type ConfigValues,
  type Dependency,
  type KconfigTree,
  type SymbolDef,
  type Tristate,
} from './kconfig.js';

export type OptionStatus = 'ok' | 'dropped' | 'changed' | 'unknown' | 'ignored';

export interface Reason {
  kind: 'depends' | 'prompt-hidden' | 'no-prompt' | 'selected' | 'modules' | 'limited' | 'choice' | 'range' | 'default' | 'unknown' | 'unexplained';
  text: string;
  /** Kconfig file:line the reason comes from. */
  at?: string;
}

export interface OptionResult {
  symbol: string;
  requested: string;
  /** Value in the final config ('n' when absent). */
  actual: string;
  status: OptionStatus;
  from: string;
  reasons: Reason[];
  ignored?: string;
}

export interface VerifyReport {
  arch: string;
  requested: number;
  present: OptionResult[];
  dropped: OptionResult[];
  unknown: OptionResult[];
  ignored: OptionResult[];
  overrides: Array<{ symbol: string; from: string; to: string }>;
  ok: boolean;
}

/** Parses a .config into symbol -> value ('y', 'm', numbers, strings unquoted-with-quotes kept). */
export function parseDotConfig(text: string): ConfigValues {
  const out: ConfigValues = new Map();
  for (const line of text.split('\n')) {
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
    else {
      const u = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line);
      if (u) out.set(u[1]!, 'n');
    }
  }
  return out;
}

/** Values as Kconfig expressions see them: strings without quotes. */
function exprView(cfg: ConfigValues): ConfigValues {
  const out: ConfigValues = new Map();
  for (const [k, v] of cfg) out.set(k, v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v);
  return out;
}

const LEVEL = ['n', 'm', 'y'] as const;

function at(loc: { file: string; line: number }): string {
  return `${loc.file}:${loc.line}`;
}

function describeSymbols(
  expr: Dependency['expr'],
  cfg: ConfigValues,
  requested: Map<string, Requested>,
  final: Map<string, OptionResult>,
  tree: KconfigTree,
): string {
  const parts: string[] = [];
  for (const s of exprSymbols(expr)) {
    const v = cfg.get(s) ?? 'n';
    let note = '';
    const req = requested.get(s);
    if (!tree.symbols.has(s)) note = 'not defined for this arch';
    else if (req && req.value === v) note = `requested in ${req.file}`;
    else if (req) note = `requested ${req.value} in ${req.file}:${req.line} but ${final.get(s)?.status ?? 'dropped'} itself`;
    else {
      note = 'not requested';
      // A prompt-less symbol can only come from select: say who would select it.
      if (v === 'n' && (tree.symbols.get(s) ?? []).every((d) => d.prompts.length === 0)) {
        const sel = (tree.reverse.get(s) ?? []).filter((r) => r.kind === 'select');
        const shown = sel.slice(0, 3).map((r) => `${r.by}${r.cond ? ` if ${formatExpr(r.cond)}` : ''}`);
        note += sel.length
          ? `; no prompt, selected by ${shown.join(', ')}${sel.length > 3 ? ` and ${sel.length - 3} more` : ''}`
          : '; no prompt and nothing selects it';
      }
    }
    parts.push(`${s}=${v} (${note})`);
  }
  return parts.join(', ');
}

function originText(d: Dependency): string {
  return d.origin === 'depends on'
    ? 'depends on'
    : d.origin === 'if'
      ? 'inside "if"'
      : d.origin === 'menu'
        ? 'inside menu that depends on'
        : 'inside choice that depends on';
}

function depReasons(def: SymbolDef, want: Tristate, cfg: ConfigValues, ctx: Ctx): Reason[] {
  const reasons: Reason[] = [];
  for (const d of def.deps) {
    for (const c of conjuncts(d.expr)) {
      const v = evalExpr(c, cfg);
      if (v >= want) continue;
      const vals = describeSymbols(c, ctx.rawCfg, ctx.requested, ctx.results, ctx.tree);
      reasons.push({
        kind: v === 0 ? 'depends' : 'limited',
        text: `${originText(d)} ${formatExpr(c)} = ${LEVEL[v]}${vals ? `: ${vals}` : ''}`,
        at: at(d),
      });
    }
  }
  return reasons;
}

function selectorsOf(
  symbol: string,
  cfg: ConfigValues,
  ctx: Ctx,
  kinds: Array<'select' | 'imply'>,
): Array<{ by: string; value: string; cond?: string; at: string; active: boolean }> {
  return (ctx.tree.reverse.get(symbol) ?? [])
    .filter((r) => kinds.includes(r.kind))
    .map((r) => {
      const byVal = evalExpr({ k: 'sym', name: r.by }, cfg);
      const condVal = r.cond ? evalExpr(r.cond, cfg) : 2;
      return { by: r.by, value: LEVEL[byVal], cond: r.cond ? formatExpr(r.cond) : undefined, at: at(r), active: Math.min(byVal, condVal) > 0 };
    });
}

interface Ctx {
  tree: KconfigTree;
  cfg: ConfigValues; // expression view
  rawCfg: ConfigValues;
  requested: Map<string, Requested>;
  results: Map<string, OptionResult>;
}

function explainNotEnabled(symbol: string, want: Tristate, ctx: Ctx): Reason[] {
  const defs = ctx.tree.symbols.get(symbol) ?? [];
  const reasons: Reason[] = [];
  for (const def of defs) reasons.push(...depReasons(def, want, ctx.cfg, ctx));
  if (reasons.length) return reasons;

  const modules = evalExpr({ k: 'sym', name: 'MODULES' }, ctx.cfg);
  if (want === 1 && modules === 0) {
    return [{ kind: 'modules', text: 'requested m but MODULES=n: Kconfig builds it in (=y) or not at all' }];
  }

  const prompts = defs.flatMap((d) => d.prompts.map((p) => ({ p, d })));
  if (prompts.length === 0) {
    const sel = selectorsOf(symbol, ctx.cfg, ctx, ['select', 'imply']);
    const list = sel.length ? sel.map((s) => `${s.by}=${s.value}${s.cond ? ` if ${s.cond}` : ''} (${s.at})`).join(', ') : 'nothing selects it';
    return [
      {
        kind: 'no-prompt',
        text: `has no prompt, so a fragment cannot set it: only select/imply or its default enable it; selected by: ${list}`,
        at: at(defs[0]!),
      },
    ];
  }
  const visible = prompts.filter(({ p, d }) => (p.cond ? evalExpr(p.cond, ctx.cfg) : 2) > 0 && d.visibleIf.every((v) => evalExpr(v.expr, ctx.cfg) > 0));
  if (visible.length === 0) {
    const out: Reason[] = [];
    for (const { p, d } of prompts) {
      if (p.cond && evalExpr(p.cond, ctx.cfg) === 0) {
        out.push({
          kind: 'prompt-hidden',
          text: `prompt "${p.text}" only shows if ${formatExpr(p.cond)} = n: ${describeSymbols(p.cond, ctx.rawCfg, ctx.requested, ctx.results, ctx.tree)}; the default applies`,
          at: at(p),
        });
      }
      for (const v of d.visibleIf) {
        if (evalExpr(v.expr, ctx.cfg) === 0) out.push({ kind: 'prompt-hidden', text: `menu is visible only if ${formatExpr(v.expr)} = n`, at: at(v) });
      }
    }
    return out;
  }
  for (const def of defs) {
    if (def.choice) {
      const chosen = [...ctx.tree.symbols.values()]
        .flat()
        .filter(
          (d) => d.choice && d.choice.file === def.choice!.file && d.choice.line === def.choice!.line && d.name !== symbol && ctx.cfg.get(d.name) === 'y',
        );
      return [
        {
          kind: 'choice',
          text: `member of the choice at ${at(def.choice)}; ${chosen.length ? `${chosen.map((c) => c.name).join(', ')} is chosen instead` : 'another member is chosen'}`,
        },
      ];
    }
  }
  return [{ kind: 'unexplained', text: 'all dependencies are met; Kconfig still chose another value (check the symbol type and its defaults)' }];
}

function explainForcedOn(symbol: string, ctx: Ctx): Reason[] {
  const active = selectorsOf(symbol, ctx.cfg, ctx, ['select']).filter((s) => s.active);
  if (active.length) {
    return active.map((s) => ({ kind: 'selected' as const, text: `selected by ${s.by}=${s.value}${s.cond ? ` if ${s.cond}` : ''}`, at: s.at }));
  }
  const defs = ctx.tree.symbols.get(symbol) ?? [];
  const visible = defs.some((d) => d.prompts.some((p) => (p.cond ? evalExpr(p.cond, ctx.cfg) : 2) > 0));
  if (!visible) {
    const defaults = defs.flatMap((d) => d.defaults).filter((df) => (df.cond ? evalExpr(df.cond, ctx.cfg) : 2) > 0);
    const d = defaults[0];
    return [
      {
        kind: 'default',
        text: `has no visible prompt; its default ${d ? `${formatExpr(d.value)}${d.cond ? ` if ${formatExpr(d.cond)}` : ''}` : ''} applies`.replace(
          /\s+applies/,
          ' applies',
        ),
        at: d ? at(d) : undefined,
      },
    ];
  }
  return [{ kind: 'unexplained', text: 'nothing selects it and its prompt is visible; Kconfig still enabled it' }];
}

function explainValue(symbol: string, requested: string, ctx: Ctx): Reason[] {
  const defs = ctx.tree.symbols.get(symbol) ?? [];
  const deps = defs.flatMap((d) => depReasons(d, 2, ctx.cfg, ctx));
  if (deps.length) return deps;
  const n = Number(requested.startsWith('0x') ? Number.parseInt(requested, 16) : requested);
  for (const d of defs) {
    for (const r of d.ranges) {
      if (r.cond && evalExpr(r.cond, ctx.cfg) === 0) continue;
      const val = (e: typeof r.min) =>
        e.k === 'sym'
          ? Number(ctx.cfg.get(e.name) ?? Number.NaN)
          : e.k === 'const'
            ? Number(e.value.startsWith('0x') ? Number.parseInt(e.value, 16) : e.value)
            : Number.NaN;
      const lo = val(r.min);
      const hi = val(r.max);
      if (Number.isFinite(n) && (n < lo || n > hi))
        return [{ kind: 'range', text: `value ${requested} is outside the range ${lo}..${hi}${r.cond ? ` (if ${formatExpr(r.cond)})` : ''}`, at: at(r) }];
    }
    const hidden = d.prompts.length === 0 || d.prompts.every((p) => p.cond && evalExpr(p.cond, ctx.cfg) === 0);
    if (hidden) return [{ kind: 'prompt-hidden', text: 'has no visible prompt: its default applies', at: at(d) }];
  }
  return [{ kind: 'unexplained', text: 'Kconfig chose another value' }];
}

export interface VerifyInput {
  arch: string;
  requested: Requested[];
  finalConfig: ConfigValues;
  tree: KconfigTree;
  ignore: Map<string, IgnoreEntry>;
  overrides?: Override[];
}

/** Compares requested options with the final config and explains every difference. */
export function verifyConfig(input: VerifyInput): VerifyReport {
  const ctx: Ctx = {
    tree: input.tree,
    cfg: exprView(input.finalConfig),
    rawCfg: input.finalConfig,
    requested: new Map(input.requested.map((r) => [r.symbol, r])),
    results: new Map(),
  };
  const results: OptionResult[] = [];
  // First pass: status only (reasons refer to other options' status).
  for (const r of input.requested) {
    const actual = input.finalConfig.get(r.symbol) ?? 'n';
    let status: OptionStatus;
    if (!input.tree.symbols.has(r.symbol)) status = 'unknown';
    else if (actual === r.value) status = 'ok';
    else status = actual === 'n' ? 'dropped' : 'changed';
    const res: OptionResult = { symbol: r.symbol, requested: r.value, actual, status, from: `${r.file}:${r.line}`, reasons: [] };
    results.push(res);
    ctx.results.set(r.symbol, res);
  }
  for (const res of results) {
    if (res.status === 'ok' || res.status === 'unknown') continue;
    if (res.requested === 'n') res.reasons = explainForcedOn(res.symbol, ctx);
    else if (res.requested === 'y' || res.requested === 'm') {
      const want: Tristate = res.requested === 'y' ? 2 : 1;
      if (res.requested === 'm' && res.actual === 'y') {
        const modules = evalExpr({ k: 'sym', name: 'MODULES' }, ctx.cfg);
        res.reasons = modules === 0 ? [{ kind: 'modules', text: 'requested m but MODULES=n: Kconfig builds it in' }] : explainForcedOn(res.symbol, ctx);
      } else res.reasons = explainNotEnabled(res.symbol, want, ctx);
    } else res.reasons = explainValue(res.symbol, res.requested, ctx);
  }
  for (const res of results) {
    const ign = input.ignore.get(res.symbol);
    if (ign && res.status !== 'ok') {
      res.ignored = ign.reason;
      res.status = 'ignored';
    }
  }
  const pick = (s: OptionStatus) => results.filter((r) => r.status === s);
  const dropped = results.filter((r) => r.status === 'dropped' || r.status === 'changed');
  const unknown = pick('unknown');
  return {
    arch: input.arch,
    requested: results.length,
    present: pick('ok'),
    dropped,
    unknown,
    ignored: pick('ignored'),
    overrides: (input.overrides ?? []).map((o) => ({
      symbol: o.symbol,
      from: `${o.from.value} (${o.from.file}:${o.from.line})`,
      to: `${o.to.value} (${o.to.file}:${o.to.line})`,
    })),
    ok: dropped.length === 0 && unknown.length === 0,
  };
}

function showValue(symbol: string, v: string): string {
  return v === 'n' ? `# CONFIG_${symbol} is not set` : `CONFIG_${symbol}=${v}`;
}

export function formatOption(r: OptionResult): string {
  const lines = [`  ${showValue(r.symbol, r.requested)}  (${r.from}) -> ${r.actual === 'n' ? 'not set' : r.actual}`];
  for (const reason of r.reasons) lines.push(`      ${reason.text}${reason.at ? `  [${reason.at}]` : ''}`);
  return lines.join('\n');
}

/**
 * Throws the first failure class found (unknown symbols before dropped options);
 * the error's details carry every failed option with its reasons.
 */
export function assertVerified(report: VerifyReport, context: string): void {
  const details = { dropped: report.dropped, unknown: report.unknown };
  if (report.unknown.length) {
    throw new OsbuilderError(
      'KERNEL_SYMBOL_UNKNOWN',
      `${report.unknown.length} fragment option(s) name symbols that do not exist in ${context}:\n${report.unknown.map((r) => `  CONFIG_${r.symbol} (${r.from})${r.reasons[0] ? `: ${r.reasons[0].text}` : ''}`).join('\n')}`,
      'fix the typo, or add "CONFIG_X <reason>" to kernel/fragments/ignore.list if it only exists on some versions/arches',
      { details },
    );
  }
  if (report.dropped.length) {
    throw new OsbuilderError(
      'KERNEL_OPTION_DROPPED',
      `${report.dropped.length} requested option(s) did not survive make olddefconfig in ${context}:\n${report.dropped.map(formatOption).join('\n')}`,
      'enable the unmet dependencies in a fragment (or drop the option); with --json, error.details lists every failed option with its reasons',
      { details },
    );
  }
}
