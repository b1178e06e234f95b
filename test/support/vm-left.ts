import { expect } from 'vitest';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KATA_HOST_SHARED_BASE } from '../../runtime/index.js';
import { qemuNamed } from './procs.js';

/** The QEMUs still running with -name `name`, one "pid argv" line each ('' when none). */
export async function qemuLeft(name: string): Promise<string> {
  return (await qemuNamed(name)).map((p) => `${p.pid} ${p.argv.join(' ')}`).join('\n');
}

/** No QEMU and no shared directory left behind by the VM `name`. */
export async function nothingLeft(name: string): Promise<void> {
  expect(await qemuLeft(name)).toBe('');
  expect(await stat(join(KATA_HOST_SHARED_BASE, name)).catch(() => 'gone')).toBe('gone');
}
