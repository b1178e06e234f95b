/**
 * Evaluates Kconfig expressions against a final .config with Kconfig's tristate
 * logic (n=0, m=1, y=2; && = min, || = max, !x = 2-x).
 */
import type { Expr } from './kconfig-expr.js';

/** A final .config as symbol (without CONFIG_) -> raw value ('y', 'm', '"str"' unquoted, numbers). */
export type ConfigValues = Map<string, string>;

export type Tristate = 0 | 1 | 2;

function tri(v: string | undefined): Tristate {
  return v === 'y' ? 2 : v === 'm' ? 1 : 0;
}

function operandValue(e: Expr, cfg: ConfigValues): string {
  if (e.k === 'sym') return cfg.get(e.name) ?? 'n';
  if (e.k === 'const') return e.value;
  if (e.k === 'macro') return 'y';
  return ['n', 'm', 'y'][evalExpr(e, cfg)]!;
}

function numeric(s: string): number | undefined {
  if (/^-?\d+$/.test(s)) return Number(s);
  if (/^0x[0-9a-f]+$/i.test(s)) return Number.parseInt(s.slice(2), 16);
  return undefined;
}

/**
 * Evaluates with Kconfig's tristate rules. Symbols absent from the config are n.
 * $(…) macros (toolchain tests) are taken as y: Kconfig already expanded them.
 */
export function evalExpr(e: Expr, cfg: ConfigValues): Tristate {
  switch (e.k) {
    case 'sym':
      return tri(cfg.get(e.name));
    case 'const':
      return tri(e.value);
    case 'macro':
      return 2;
    case 'not':
      return (2 - evalExpr(e.e, cfg)) as Tristate;
    case 'and':
      return Math.min(evalExpr(e.a, cfg), evalExpr(e.b, cfg)) as Tristate;
    case 'or':
      return Math.max(evalExpr(e.a, cfg), evalExpr(e.b, cfg)) as Tristate;
    case 'cmp': {
      const a = operandValue(e.a, cfg);
      const b = operandValue(e.b, cfg);
      const na = numeric(a);
      const nb = numeric(b);
      const c = na !== undefined && nb !== undefined ? Math.sign(na - nb) : a === b ? 0 : a < b ? -1 : 1;
      const ok = { '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[e.op];
      return ok ? 2 : 0;
    }
  }
}
