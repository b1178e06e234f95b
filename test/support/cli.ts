import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import type { OsbuilderError } from '../../core/errors.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const cliPath = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));

/** What `T` becomes through JSON.stringify + JSON.parse (dates are strings, functions gone). */
export type Jsonified<T> = T extends Date
  ? string
  : T extends (...args: never[]) => unknown
    ? never
    : T extends readonly (infer U)[]
      ? Jsonified<U>[]
      : T extends object
        ? { [K in keyof T as T[K] extends (...args: never[]) => unknown ? never : K]: Jsonified<T[K]> }
        : T;

/** What a failed command prints with --json. */
export interface CliErrorJson {
  error: ReturnType<OsbuilderError['toJSON']>;
}

export interface CliResult<T = unknown> {
  /** The osbuilder process's pid: what it started carries it (VM names, container labels). */
  pid: number;
  exitCode: number;
  stdout: string;
  stderr: string;
  /**
   * Parsed stdout when --json was passed: the command's result type `T` as the
   * caller expects it (a source's result type, or CliErrorJson for a failing
   * run); undefined when stdout is not JSON.
   */
  json?: Jsonified<T>;
}

/**
 * Runs the compiled osbuilder CLI (npm run build first) and never throws on a
 * non-zero exit. `T` types `json`, e.g. `runCli<BootResult>(['boot', …, '--json'])`.
 */
export async function runCli<T = unknown>(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeout?: number; input?: string } = {},
): Promise<CliResult<T>> {
  const child = execa('node', [cliPath, ...args], {
    reject: false,
    env: opts.env,
    cwd: opts.cwd ?? repoRoot,
    timeout: opts.timeout,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  // The pid is the subprocess's: execa's result has none.
  const pid = child.pid ?? -1;
  const r = await child;
  const result: CliResult<T> = { pid, exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (args.includes('--json')) {
    try {
      result.json = JSON.parse(result.stdout) as Jsonified<T>;
    } catch {
      // left undefined: the test's assertion on json will say so
    }
  }
  return result;
}
