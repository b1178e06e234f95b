/**
 * Pipelines of commands (`a | b | c`) from argv arrays: each stage's stdout
 * is the next one's stdin, bytes only (nothing is buffered but the last
 * stage's stdout when asked for, and every stage's stderr for errors). The
 * first stage that fails names the failure; an interrupt kills every stage.
 */
import { onInterrupt } from './cleanup.js';
import { OsbuilderError } from './errors.js';
import { formatCommand, start, toolMissing } from './exec.js';
import { debug } from './log.js';

export interface PipeStage {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  /** Hint of the error when this stage fails. */
  hint?: string;
}

export interface PipeOptions {
  /** Milliseconds for the whole pipeline; its stages are killed past it. */
  timeout?: number;
}

interface StageResult {
  exitCode?: number;
  signal?: string;
  stderr?: unknown;
  code?: string;
  timedOut?: boolean;
}

/** A stage that could not start (TOOL_MISSING) or failed (COMMAND_FAILED, with its last stderr lines). */
export function stageError(stage: PipeStage, r: StageResult, timeout?: number): OsbuilderError {
  if (r.code === 'ENOENT') return toolMissing(stage.cmd);
  const what = r.timedOut ? `timed out after ${timeout} ms` : r.signal ? `signal ${r.signal}` : `exit ${r.exitCode}`;
  const tail = String(r.stderr ?? '')
    .trimEnd()
    .split('\n')
    .slice(-15)
    .join('\n');
  return new OsbuilderError(
    'COMMAND_FAILED',
    `${formatCommand(stage.cmd, stage.args)} failed (${what})${tail ? `:\n${tail}` : ''}`,
    stage.hint ?? 'rerun with --debug to see every command and its output',
  );
}

/**
 * Which stage to blame: a stage that failed on its own, before one that only
 * lost its reader (SIGPIPE / EPIPE after a later stage died) or its writer.
 */
export function blame(results: { failed: boolean; signal?: string }[]): number {
  const failed = results.map((r, i) => ({ ...r, i })).filter((r) => r.failed);
  const own = failed.find((r) => r.signal !== 'SIGPIPE');
  return (own ?? failed[0])?.i ?? -1;
}

/** Runs `stages` as one pipeline; resolves when all ended well. */
export async function pipeline(stages: PipeStage[], opts: PipeOptions = {}): Promise<void> {
  if (stages.length < 2) throw new OsbuilderError('INTERNAL', 'a pipeline needs two stages or more', 'this is a bug in osbuilder');
  debug(`$ ${stages.map((s) => formatCommand(s.cmd, s.args)).join(' | ')}`);
  const procs = stages.map((s, i) =>
    start(s.cmd, s.args, {
      env: s.env,
      stdin: i === 0 ? 'ignore' : 'pipe',
      stdout: i === stages.length - 1 ? 'ignore' : 'pipe',
      stderr: 'pipe',
      reject: false,
      buffer: { stdout: false },
      ...(opts.timeout ? { timeout: opts.timeout } : {}),
    }),
  );
  for (let i = 0; i + 1 < procs.length; i++) {
    const next = procs[i + 1]!;
    // A reader that died early must not crash us with EPIPE: its own exit status tells.
    next.stdin!.on('error', () => {});
    procs[i]!.stdout!.pipe(next.stdin!);
  }
  const unregister = onInterrupt(() => {
    for (const p of procs) p.kill('SIGTERM');
  });
  try {
    const results = (await Promise.all(procs)) as unknown as StageResult[];
    const i = blame(
      results.map((r) => ({ failed: r.code !== undefined || r.timedOut === true || r.exitCode !== 0, ...(r.signal ? { signal: r.signal } : {}) })),
    );
    if (i >= 0) throw stageError(stages[i]!, results[i]!, opts.timeout);
  } finally {
    unregister();
  }
}
