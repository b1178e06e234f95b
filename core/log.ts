import ora, { type Ora } from 'ora';

/**
 * Human progress goes to stderr so stdout carries only the command's result
 * (plain text, or the single JSON object with --json).
 */
export interface LogOptions {
  json: boolean;
  debug: boolean;
}

const state: LogOptions = { json: false, debug: false };

export function configureLog(opts: Partial<LogOptions>): void {
  Object.assign(state, opts);
}

export function isDebug(): boolean {
  return state.debug;
}

export function isJson(): boolean {
  return state.json;
}

function write(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function info(message: string): void {
  if (!state.json) write(message);
}

export function warn(message: string): void {
  write(`warning: ${message}`);
}

export function debug(message: string): void {
  if (state.debug) write(`debug: ${message}`);
}

export function formatElapsed(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Runs one named step: a spinner while it runs when stderr is a TTY, then one
 * line with its elapsed time. Steps nest; nested lines are indented.
 */
let depth = 0;
/** The spinner of the running top-level step (TTY only), which progress() updates. */
let active: { spinner: Ora; title: string } | undefined;

/**
 * Reports how far the running step got (e.g. a kernel make's files compiled):
 * on a TTY the top-level step's spinner line shows it; with --json it is one
 * event line on stderr, `{"event":"progress","step":…,"done":…,"total":…,"percent":…,"unit":…,"text":…}`
 * (stdout keeps only the result object). Elsewhere nothing is printed.
 */
export interface ProgressReport {
  done: number;
  total?: number;
  percent?: number;
  unit: string;
  /** Human form, e.g. "1234/3456 files compiled (35%)". */
  text: string;
}

export function progress(stepTitle: string, p: ProgressReport): void {
  if (state.json) {
    const event = {
      event: 'progress',
      step: stepTitle,
      done: p.done,
      ...(p.total !== undefined ? { total: p.total } : {}),
      ...(p.percent !== undefined ? { percent: p.percent } : {}),
      unit: p.unit,
      text: p.text,
    };
    process.stderr.write(`${JSON.stringify(event)}\n`);
    return;
  }
  if (active) active.spinner.text = `${active.title}: ${stepTitle === active.title ? '' : `${stepTitle}: `}${p.text}`;
}

export async function step<T>(title: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  const indent = '  '.repeat(depth);
  const spinner: Ora | undefined =
    !state.json && !state.debug && depth === 0 && process.stderr.isTTY ? ora({ text: title, stream: process.stderr }).start() : undefined;
  const mine = spinner ? { spinner, title } : undefined;
  if (mine) active = mine;
  depth++;
  try {
    const result = await fn();
    const line = `${indent}✓ ${title} (${formatElapsed(performance.now() - start)})`;
    if (spinner) spinner.stopAndPersist({ symbol: '', text: line.trimStart() });
    else if (!state.json) write(line);
    return result;
  } catch (err) {
    const line = `${indent}✗ ${title} (${formatElapsed(performance.now() - start)})`;
    if (spinner) spinner.stopAndPersist({ symbol: '', text: line.trimStart() });
    else if (!state.json) write(line);
    throw err;
  } finally {
    depth--;
    if (mine && active === mine) active = undefined;
  }
}
