import { describe, expect, it } from 'vitest';
import { formatCommand, haveTool, run } from '../../core/exec.js';
import { asOsbuilderError, OsbuilderError } from '../../core/errors.js';

describe('run', () => {
  it('returns stdout of a successful command', async () => {
    const r = await run('sh', ['-c', 'printf hello']);
    expect(r).toMatchObject({ stdout: 'hello', exitCode: 0 });
  });

  it('turns a failure into COMMAND_FAILED carrying the stderr tail', async () => {
    const err = await run('sh', ['-c', 'echo first >&2; echo second >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsbuilderError);
    expect(err).toMatchObject({ code: 'COMMAND_FAILED' });
    expect((err as Error).message).toContain('exit 3');
    expect((err as Error).message).toContain('second');
  });

  it('accepts listed exit codes', async () => {
    await expect(run('sh', ['-c', 'exit 1'], { okExitCodes: [1] })).resolves.toMatchObject({ exitCode: 1 });
  });

  it('reports a missing binary as TOOL_MISSING', async () => {
    await expect(run('osbuilder-no-such-tool', [])).rejects.toMatchObject({ code: 'TOOL_MISSING' });
    expect(await haveTool('osbuilder-no-such-tool')).toBe(false);
    expect(await haveTool('sh')).toBe(true);
  });

  it('passes arguments verbatim, never through a shell', async () => {
    const r = await run('printf', ['%s|', 'a b', '$(id)', "it's"]);
    expect(r.stdout).toBe("a b|$(id)|it's|");
  });
});

describe('formatCommand', () => {
  it('quotes only what needs quoting', () => {
    expect(formatCommand('mke2fs', ['-t', 'ext4', 'a b', "x'y"])).toBe(`mke2fs -t ext4 'a b' 'x'\\''y'`);
  });
});

describe('asOsbuilderError', () => {
  it('maps ENOSPC to NO_SPACE and unknown errors to INTERNAL', () => {
    const nospc = Object.assign(new Error('write failed'), { code: 'ENOSPC' });
    expect(asOsbuilderError(nospc).code).toBe('NO_SPACE');
    expect(asOsbuilderError(new Error('x')).code).toBe('INTERNAL');
    const own = new OsbuilderError('USAGE', 'm', 'h');
    expect(asOsbuilderError(own)).toBe(own);
    expect(own.toJSON()).toEqual({ code: 'USAGE', message: 'm', hint: 'h' });
  });
});
