import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const cliPath = fileURLToPath(new URL('../../dist/cli/index.js', import.meta.url));

export interface CliResult {
  /** The osbuilder process's pid: what it started carries it (VM names, container labels). */
  pid: number;
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Parsed stdout when --json was passed. */
  json?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Runs the compiled osbuilder CLI (npm run build first) and never throws on a non-zero exit. */
export async function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeout?: number; input?: string } = {}): Promise<CliResult> {
  const r = await execa('node', [cliPath, ...args], {
    reject: false,
    env: opts.env,
    cwd: opts.cwd ?? repoRoot,
    timeout: opts.timeout,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
  const result: CliResult = { pid: r.pid ?? -1, exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (args.includes('--json')) {
    try {
      result.json = JSON.parse(result.stdout);
    } catch {
      // left undefined: the test's assertion on json will say so
    }
  }
  return result;
}
