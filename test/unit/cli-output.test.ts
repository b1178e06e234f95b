/**
 * runCommand's one outcome: a result, or one error. Once a signal arrived,
 * whatever the action throws (or returns) is reported as one INTERRUPTED
 * error, whichever comes first: the action's failure or the signal handler's
 * exit. process.exit is stubbed and the signal emitted in-process; each test
 * loads fresh modules and removes the listeners it added.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

let stdout: string[];
let stderr: string[];
let exits: Array<number | undefined>;
let listenersBefore: NodeJS.SignalsListener[];

beforeEach(() => {
  vi.resetModules();
  stdout = [];
  stderr = [];
  exits = [];
  listenersBefore = process.listeners('SIGTERM');
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (stdout.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (stderr.push(String(s)), true));
  vi.spyOn(process, 'exit').mockImplementation(((code?: number) => void exits.push(code)) as never);
});

afterEach(() => {
  vi.restoreAllMocks();
  for (const l of process.listeners('SIGTERM')) if (!listenersBefore.includes(l)) process.off('SIGTERM', l as never);
  for (const l of process.listeners('SIGINT')) process.off('SIGINT', l as never);
  process.exitCode = undefined;
});

const load = async () => ({ ...(await import('../../cli/output.js')), ...(await import('../../core/cleanup.js')), ...(await import('../../core/errors.js')) });
const errorLines = () =>
  stderr
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('error['));

/** An action that fails with `err` once `fail` is called. */
function pending(err: unknown) {
  let fail!: () => void;
  const settled = new Promise<never>((_, reject) => (fail = () => reject(err)));
  return { action: () => settled, fail };
}

/** Resolves once process.exit was called (the signal handler's end). */
async function exited(): Promise<void> {
  while (exits.length === 0) await new Promise((r) => setImmediate(r));
}

describe('commandError', () => {
  it('maps any error to INTERRUPTED once a signal arrived, keeps the cause, and keeps an INTERRUPTED error as it is', async () => {
    const { commandError, OsbuilderError } = await load();
    const failed = new OsbuilderError('COMMAND_FAILED', 'docker run … failed (exit 137)', 'rerun with --debug');
    expect(commandError(failed, undefined)).toBe(failed);
    const gone = Object.assign(new Error("ENOENT: no such file or directory, open '…/boot.json'"), { code: 'ENOENT' });
    expect(commandError(gone, undefined).code).toBe('INTERNAL');
    const e = commandError(gone, 'SIGTERM');
    expect(e.toJSON()).toEqual({ code: 'INTERRUPTED', message: 'interrupted by SIGTERM', hint: expect.stringMatching(/run the command again/) });
    expect(e.cause).toBe(gone);
    const own = new OsbuilderError('INTERRUPTED', 'extraction of x.tar.xz was interrupted', 'nothing was extracted');
    expect(commandError(own, 'SIGINT')).toBe(own);
  });
});

describe('runCommand, interrupted', () => {
  it('the action fails after the signal (before the exit): one error[INTERRUPTED], exit 143', async () => {
    const { runCommand, onInterrupt, OsbuilderError } = await load();
    const a = pending(new OsbuilderError('COMMAND_FAILED', 'docker run … failed (exit 137)', 'rerun with --debug'));
    // The action fails while the interrupt handlers run, as a killed container's `docker run` does.
    const cleanedUp = new Promise<void>((r) => onInterrupt(() => (a.fail(), r())));
    const done = runCommand({ json: false, debug: false }, a.action, () => 'ok');
    process.emit('SIGTERM', 'SIGTERM');
    await cleanedUp;
    await done;
    await exited();
    expect(errorLines()).toEqual(['error[INTERRUPTED]: interrupted by SIGTERM']);
    expect(stderr.join('')).not.toMatch(/COMMAND_FAILED|INTERNAL/);
    expect(process.exitCode).toBe(143);
    expect(exits).toEqual([143]);
  });

  it('the signal handler exits first: it reports INTERRUPTED; the action failing later prints nothing more (--json: one error object)', async () => {
    const { runCommand } = await load();
    const a = pending(Object.assign(new Error("ENOENT: open '…/boot.json'"), { code: 'ENOENT' }));
    const done = runCommand({ json: true, debug: false }, a.action, () => 'ok');
    process.emit('SIGTERM', 'SIGTERM');
    await exited();
    a.fail();
    await done;
    expect(stdout.map((s) => JSON.parse(s))).toEqual([{ error: { code: 'INTERRUPTED', message: 'interrupted by SIGTERM', hint: expect.any(String) } }]);
    expect(errorLines()).toEqual([]);
    expect(exits).toEqual([143]);
  });

  it('an action that completes after the signal is INTERRUPTED too, not a result (SIGINT: 130)', async () => {
    const { runCommand } = await load();
    let finish!: (v: string) => void;
    const done = runCommand(
      { json: true, debug: false },
      () => new Promise<string>((r) => (finish = r)),
      (r) => r,
    );
    process.emit('SIGINT', 'SIGINT');
    finish('a result built from removed files');
    await done;
    await exited();
    expect(stdout.map((s) => JSON.parse(s))).toEqual([{ error: expect.objectContaining({ code: 'INTERRUPTED', message: 'interrupted by SIGINT' }) }]);
    expect(exits).toEqual([130]);
  });

  it('without a signal, errors are reported as they are', async () => {
    const { runCommand, OsbuilderError } = await load();
    await runCommand(
      { json: false, debug: false },
      () => Promise.reject(new OsbuilderError('COMMAND_FAILED', 'x failed', 'hint')),
      () => '',
    );
    expect(errorLines()).toEqual(['error[COMMAND_FAILED]: x failed']);
    expect(process.exitCode).toBe(1);
    expect(exits).toEqual([]);
  });
});
