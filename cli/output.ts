import { asOsbuilderError } from '../core/errors.js';
import { configureLog } from '../core/log.js';
import { holdSignals, runInterruptHandlers } from '../core/cleanup.js';
import { stopChildren } from '../core/children.js';

export interface GlobalArgs {
  json: boolean;
  debug: boolean;
}

/**
 * The one way a command runs: configure logging, call the stage, print its
 * result (human text, or one JSON object with --json), map errors to
 * `error[code]` and a non-zero exit. `exitCode` lets a result choose its own
 * exit status (boot -- <command> exits with the command's code).
 */
export async function runCommand<T>(
  argv: GlobalArgs,
  action: () => Promise<T>,
  human: (result: T) => string,
  exitCode: (result: T) => number = () => 0,
): Promise<void> {
  configureLog({ json: argv.json, debug: argv.debug });
  const release = holdSignals();
  try {
    const result = await action();
    if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      const text = human(result);
      if (text) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
    }
    process.exitCode = exitCode(result);
  } catch (err) {
    await runInterruptHandlers();
    const e = asOsbuilderError(err);
    if (argv.json) {
      process.stdout.write(JSON.stringify({ error: e.toJSON() }, null, 2) + '\n');
    } else {
      process.stderr.write(`error[${e.code}]: ${e.message}\n`);
      if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
      if (argv.debug && e.cause instanceof Error && e.cause.stack) process.stderr.write(`${e.cause.stack}\n`);
    }
    process.exitCode = e.code === 'USAGE' ? 2 : 1;
  } finally {
    // No child outlives the command, whatever its outcome.
    await stopChildren();
    release();
  }
}

/** Bytes as MiB with one decimal, for human output. */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Formats rows as an aligned plain-text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
