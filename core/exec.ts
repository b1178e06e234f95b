import type { ChildProcess } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';
import { track } from './children.js';
import { OsbuilderError } from './errors.js';
import { debug, isDebug } from './log.js';

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  /** Milliseconds; the process is killed past it. */
  timeout?: number;
  /** Stream the child's output to our stderr (long builds). Output is still captured for errors. */
  inherit?: boolean;
  /** Exit codes that are not failures (e.g. e2fsck's 1 = fixed). */
  okExitCodes?: number[];
  hint?: string;
  /** Sees the child's stdout and stderr as they arrive (e.g. to count a make's progress); output is still captured. */
  onOutput?: (chunk: string) => void;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Quote an argv for display only; commands are always run from argv arrays. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [cmd, ...args].map(q).join(' ');
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Runs a command from an argv array; a failure becomes COMMAND_FAILED with the stderr tail. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  debug(`$ ${formatCommand(cmd, args)}${opts.cwd ? `   (in ${opts.cwd})` : ''}`);
  const execOpts: Options = {
    cwd: opts.cwd,
    env: opts.env,
    input: opts.input,
    timeout: opts.timeout,
    reject: false,
    stripFinalNewline: false,
    ...(opts.inherit || isDebug() ? { stdout: ['pipe', 'inherit'], stderr: ['pipe', 'inherit'] } : {}),
  } as Options;
  let result: Awaited<ReturnType<typeof start<Options>>>;
  try {
    const child = start(cmd, args, execOpts);
    if (opts.onOutput) {
      const see = opts.onOutput;
      child.stdout?.on('data', (b: Buffer | string) => see(String(b)));
      child.stderr?.on('data', (b: Buffer | string) => see(String(b)));
    }
    result = await child;
  } catch (err) {
    throw commandError(cmd, args, err, opts.hint);
  }
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  if ((result as { code?: string }).code === 'ENOENT') {
    throw toolMissing(cmd);
  }
  if (result.timedOut) {
    throw new OsbuilderError('COMMAND_FAILED', `${formatCommand(cmd, args)} timed out after ${opts.timeout} ms`, opts.hint ?? RERUN_HINT);
  }
  const exitCode = result.exitCode ?? -1;
  if (exitCode !== 0 && !(opts.okExitCodes ?? []).includes(exitCode)) {
    const detail = tail(stderr || stdout);
    throw new OsbuilderError(
      'COMMAND_FAILED',
      `${formatCommand(cmd, args)} failed (${result.signal ? `signal ${result.signal}` : `exit ${exitCode}`})${detail ? `:\n${detail}` : ''}`,
      opts.hint ?? RERUN_HINT,
    );
  }
  return { stdout, stderr, exitCode };
}

/**
 * execa, with the child recorded until it is reaped (core/children.ts): the
 * only way osbuilder starts a process, so none outlives an interrupted run.
 */
export function start<O extends Options = Options>(cmd: string, args: readonly string[], opts?: O) {
  const child = execa(cmd, args, opts);
  track(child as unknown as ChildProcess);
  return child;
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * The argv of a long-running child (QEMU, a kernel make) that the kernel kills
 * when osbuilder dies, even by SIGKILL, when nothing of ours is left to stop
 * it: setpriv sets PR_SET_PDEATHSIG and execs it (same pid). Without setpriv,
 * the argv is unchanged.
 */
export function diesWithUs(cmd: string, args: readonly string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, [...args]];
}

/** Starts a long-running process (QEMU, compressors); the caller owns its lifetime. */
export function spawnProcess(cmd: string, args: readonly string[], opts: Options = {}): ResultPromise {
  debug(`$ ${formatCommand(cmd, args)} &`);
  return start(cmd, args, { reject: false, ...opts });
}

/** The hint of a failed command when its caller has none better. */
export const RERUN_HINT = 'rerun with --debug to see every command and its output';

export function toolMissing(cmd: string): OsbuilderError {
  return new OsbuilderError('TOOL_MISSING', `${cmd} is not installed`, 'install it (on Debian: see scripts/setup-host.sh), or put it on PATH');
}

function commandError(cmd: string, args: readonly string[], err: unknown, hint?: string): OsbuilderError {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return toolMissing(cmd);
  return new OsbuilderError('COMMAND_FAILED', `${formatCommand(cmd, args)}: ${(err as Error).message}`, hint ?? RERUN_HINT, { cause: err });
}

/** True when `cmd` can be found on PATH. */
/** Where `cmd` runs from: itself when it holds a slash, else the first executable file of that name on $PATH (as `command -v`, without a shell). */
export async function which(cmd: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates = cmd.includes('/') ? [cmd] : path.split(':').map((d) => join(d || '.', cmd));
  for (const c of candidates) {
    const st = await stat(c).catch(() => undefined);
    if (
      st?.isFile() &&
      (await access(c, constants.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return c;
  }
  return undefined;
}

export async function haveTool(cmd: string): Promise<boolean> {
  return (await which(cmd)) !== undefined;
}
