/** runCommand's contract: with --json a failure is one `{"error": {...}}` object and a non-zero exit, details included. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../../cli/output.js';
import { OsbuilderError } from '../../core/errors.js';

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

async function printed(action: () => Promise<unknown>): Promise<{ stdout: string; exitCode: number | string | undefined }> {
  let stdout = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  await runCommand({ json: true, debug: false }, action, () => 'human');
  return { stdout, exitCode: process.exitCode };
}

describe('runCommand --json', () => {
  it('prints a failure as {"error": {code, message, hint, details}} and exits 1', async () => {
    const details = { dropped: [{ symbol: 'ACPI_NFIT', reasons: [{ kind: 'depends', text: 'inside "if" ACPI = n' }] }], unknown: [] };
    const r = await printed(async () => {
      throw new OsbuilderError('KERNEL_OPTION_DROPPED', '1 requested option(s) did not survive', 'enable ACPI', { details });
    });
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { code: 'KERNEL_OPTION_DROPPED', message: '1 requested option(s) did not survive', hint: 'enable ACPI', details },
    });
  });

  it('leaves details out when an error has none; USAGE exits 2', async () => {
    const r = await printed(async () => {
      throw new OsbuilderError('USAGE', 'bad flag', 'use --x');
    });
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'USAGE', message: 'bad flag', hint: 'use --x' } });
  });
});
