/**
 * Option tables: a stage declares each option once (flag, type, default,
 * Kata's environment variable, help, whether it changes the output); the
 * yargs flags, the environment parsing, the value types and the stage's
 * cache-key inputs are derived from the table.
 */
import type { Argv, Options } from 'yargs';
import { OsbuilderError } from './errors.js';
import { parseMiB } from './vocab.js';

/** `list`: words separated by spaces or commas (EXTRA_PKGS="a b"); `paths`: a repeatable flag, one path each. */
export type OptionKind = 'boolean' | 'string' | 'number' | 'mib' | 'list' | 'paths';

export interface OptionSpec {
  /** The stage's field name. */
  readonly key: string;
  /** The CLI flag, without dashes; the same in the stage command and in `osbuilder build`. */
  readonly flag: string;
  readonly kind: OptionKind;
  /** The values a string option takes (checked by the stage, which explains a refused one). */
  readonly choices?: readonly string[];
  /** The stage's default when neither flag nor environment gives one (shown in the help). */
  readonly default?: boolean | string | number;
  /** Kata's environment variable for it; a boolean one is true when set to "yes". */
  readonly env?: string;
  /** Reads the environment where one variable's plain value will not do (e.g. USE_DOCKER / USE_PODMAN). */
  readonly readEnv?: (env: NodeJS.ProcessEnv) => unknown;
  /** Short alias, in the stage command only (`build` has its own short flags). */
  readonly alias?: string;
  readonly describe: string;
  /** Changes the artifact: enters the stage's cache key, and `osbuilder build` offers it. */
  readonly output: boolean;
  /** Why `osbuilder build` does not offer this output-changing option. */
  readonly notInBuild?: string;
  /** The stage's key carries this option another way (e.g. by content): the field that does, left out of keyString. */
  readonly keyedBy?: string;
}

type ValueOf<K extends OptionKind> = K extends 'boolean' ? boolean : K extends 'string' ? string : K extends 'list' | 'paths' ? string[] : number;

/** The values of a table's options, each optional (a given one wins over the default). */
export type OptionValues<T extends readonly OptionSpec[]> = { [S in T[number] as S['key']]?: ValueOf<S['kind']> };

/** Only the output-changing options of a table. */
export function outputOptions(table: readonly OptionSpec[]): OptionSpec[] {
  return table.filter((s) => s.output);
}

/** The options `osbuilder build` offers for a stage it runs: the output-changing ones. */
export function buildOptions(table: readonly OptionSpec[]): OptionSpec[] {
  return outputOptions(table).filter((s) => s.notInBuild === undefined);
}

/** A table's defaults, by key. */
export function tableDefaults<T extends readonly OptionSpec[]>(table: T): OptionValues<T> {
  return Object.fromEntries(table.filter((s) => s.default !== undefined).map((s) => [s.key, s.default])) as OptionValues<T>;
}

function describe(s: OptionSpec, defaults: Record<string, unknown>, env: boolean): string {
  const def = defaults[s.key] ?? s.default;
  const choices = s.choices ? ` (${s.choices.join('|')})` : '';
  const shown = def === undefined ? '' : s.kind === 'boolean' ? (def ? ` (default; --no-${s.flag} turns it off)` : '') : ` (default ${def})`;
  return `${s.describe}${choices}${shown}${env && s.env ? ` [env ${s.env}${s.kind === 'boolean' && !s.readEnv ? '=yes' : ''}]` : ''}`;
}

/**
 * Adds a table's flags to a yargs builder. No yargs defaults: an unset flag
 * falls back to the environment, then to the stage's default.
 */
export function addOptions<Y extends Argv<unknown>>(
  y: Y,
  table: readonly OptionSpec[],
  how: { aliases?: boolean; defaults?: Record<string, unknown>; env?: boolean } = {},
): Y {
  for (const s of table) {
    const o: Options = {
      type: s.kind === 'boolean' ? 'boolean' : s.kind === 'number' ? 'number' : 'string',
      describe: describe(s, how.defaults ?? {}, how.env !== false),
    };
    if (s.kind === 'paths') o.array = true;
    if (how.aliases !== false && s.alias) o.alias = s.alias;
    y.option(s.flag, o);
  }
  return y;
}

/** Words separated by spaces or commas; empty ones dropped. */
export function splitList(v: string | undefined): string[] {
  return (v ?? '').split(/[\s,]+/).filter(Boolean);
}

function fromEnv(s: OptionSpec, env: NodeJS.ProcessEnv): unknown {
  if (s.readEnv) return s.readEnv(env);
  const v = s.env ? env[s.env] : undefined;
  if (v === undefined || v === '') return undefined;
  if (s.kind === 'boolean') return v === 'yes';
  if (s.kind === 'number') {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new OsbuilderError('USAGE', `${s.env}=${v} is not a number`, `unset ${s.env}, or give --${s.flag}`);
    return n;
  }
  return v;
}

function readValue(s: OptionSpec, raw: unknown): unknown {
  if (s.kind === 'mib') return parseMiB(raw, `--${s.flag}`);
  if (s.kind === 'list') return splitList(String(raw));
  if (s.kind === 'paths') return (Array.isArray(raw) ? raw : [raw]).map(String);
  return raw;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * The values given for a table's options: each flag from `argv` (by flag
 * name or its camelCase, as yargs gives both), else Kata's environment variable. Unset
 * options are absent (the stage fills in its defaults).
 */
export function readOptions<T extends readonly OptionSpec[]>(table: T, args: object, env: NodeJS.ProcessEnv = {}): OptionValues<T> {
  const argv = args as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const s of table) {
    const raw = argv[s.flag] ?? argv[camel(s.flag)] ?? fromEnv(s, env);
    if (raw === undefined) continue;
    out[s.key] = readValue(s, raw);
  }
  return out as OptionValues<T>;
}

/** The flags among `given` (values by key), for messages such as "--verity was given but …". */
export function givenFlags(table: readonly OptionSpec[], given: Record<string, unknown>): string[] {
  return table.filter((s) => given[s.key] !== undefined).map((s) => `--${s.flag}`);
}

/**
 * A stage's cache-key input: every output-changing option of the table with
 * its resolved value (defaults filled in), in table order, as one line:
 * a choice by its value, a boolean by its flag (`no-<flag>` when off against
 * an on default), anything else as flag=value; an off value (false, 0, "",
 * none, no paths) whose default is off too is left out, as is an option the
 * key carries another way (keyedBy). The default image reads "ext4,dax,mbr".
 */
export function keyString(table: readonly OptionSpec[], resolved: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const s of outputOptions(table)) {
    const v = resolved[s.key];
    if (s.keyedBy !== undefined) continue;
    const off = v === undefined || v === null || v === false || v === 0 || v === '' || (Array.isArray(v) && v.length === 0);
    if (off && !s.default) continue;
    if (s.kind === 'boolean') parts.push(v ? s.flag : `no-${s.flag}`);
    else if (s.choices) parts.push(String(v));
    else parts.push(`${s.flag}=${String(v ?? '')}`);
  }
  return parts.join(',');
}
