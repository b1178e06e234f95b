import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultMakeEngine } from '../../kernel/index.js';

describe('defaultMakeEngine: native only when make and the compiler for the arch are on PATH', () => {
  let dir: string;
  const savedPath = process.env.PATH;
  const tool = async (name: string) => {
    await writeFile(join(dir, name), '#!/bin/sh\n');
    await chmod(join(dir, name), 0o755);
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'make-engine-'));
    process.env.PATH = dir;
  });
  afterEach(async () => {
    process.env.PATH = savedPath;
    await rm(dir, { recursive: true, force: true });
  });

  it('nothing on PATH: the builder container', async () => {
    expect(await defaultMakeEngine('x86_64', 'x86_64')).toBe('docker');
  });

  it('make and gcc build the host arch natively, not a foreign one without its cross compiler', async () => {
    await tool('make');
    await tool('gcc');
    expect(await defaultMakeEngine('x86_64', 'x86_64')).toBe('native');
    expect(await defaultMakeEngine('aarch64', 'x86_64')).toBe('docker');
    await tool('aarch64-linux-gnu-gcc');
    expect(await defaultMakeEngine('aarch64', 'x86_64')).toBe('native');
  });

  it('a compiler without make: the builder container', async () => {
    await tool('gcc');
    expect(await defaultMakeEngine('x86_64', 'x86_64')).toBe('docker');
  });
});
