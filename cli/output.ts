import { asOsbuilderError, interruptedError, type OsbuilderError } from '../core/errors.js';
import { configureLog } from '../core/log.js';
import { holdSignals, interruptedBy, runInterruptHandlers, signalExitCode } from '../core/cleanup.js';
import { stopChildren } from '../core/children.js';

export interface GlobalArgs {
  json: boolean;
  debug: boolean;
}

/** What a failed action reports: once a signal arrived, INTERRUPTED, whatever it threw. */
export function commandError(err: unknown, signal: NodeJS.Signals | undefined): OsbuilderError {
  return signal ? interruptedError(signal, err) : asOsbuilderError(err);
}

function printError(argv: GlobalArgs, e: OsbuilderError): void {
  if (argv.json) {
    process.stdout.write(`${JSON.stringify({ error: e.toJSON() }, null, 2)}\n`);
    return;
  }
  process.stderr.write(`error[${e.code}]: ${e.message}\n`);
  if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  if (argv.debug && e.cause instanceof Error && e.cause.stack) process.stderr.write(`${e.cause.stack}\n`);
}

/**
 * The one way a command runs: configure logging, call the stage, print its
 * result (human text, or one JSON object with --json), map errors to
 * `error[code]` and a non-zero exit. `exitCode` lets a result choose its own
 * exit status (boot -- <command> exits with the command's code). An
 * interrupted command reports one INTERRUPTED error: from here when the
 * action fails (or ends) first, else just before the signal handler exits.
 */
export async function runCommand<T>(
  argv: GlobalArgs,
  action: () => Promise<T>,
  human: (result: T) => string,
  exitCode: (result: T) => number = () => 0,
): Promise<void> {
  configureLog({ json: argv.json, debug: argv.debug });
  let reported = false;
  const fail = (e: OsbuilderError) => {
    if (reported) return;
    reported = true;
    printError(argv, e);
    const signal = interruptedBy();
    process.exitCode = e.code === 'USAGE' ? 2 : signal && e.code === 'INTERRUPTED' ? signalExitCode(signal) : 1;
  };
  const release = holdSignals((signal) => fail(interruptedError(signal)));
  try {
    const result = await action();
    const signal = interruptedBy();
    if (signal) fail(interruptedError(signal));
    else {
      reported = true;
      if (argv.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        const text = human(result);
        if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      }
      process.exitCode = exitCode(result);
    }
  } catch (err) {
    await runInterruptHandlers();
    fail(commandError(err, interruptedBy()));
  } finally {
    // No child outlives the command, whatever its outcome.
    await stopChildren();
    release();
  }
}

/** Formats rows as an aligned plain-text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
