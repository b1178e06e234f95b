import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicDirectory, atomicOutput, checkOutputPath } from '../../core/atomic.js';
import { OsbuilderError } from '../../core/errors.js';

async function dir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'osb-core-'));
}

describe('atomicOutput', () => {
  it('renames the temp file into place only after success', async () => {
    const d = await dir();
    const out = join(d, 'a.img');
    const r = await atomicOutput(out, async (tmp) => {
      expect(tmp).not.toBe(out);
      await writeFile(tmp, 'data');
      expect(await readdir(d)).not.toContain('a.img');
      return 42;
    });
    expect(r).toBe(42);
    expect(await readFile(out, 'utf8')).toBe('data');
    expect(await readdir(d)).toEqual(['a.img']);
  });

  it('leaves nothing behind and keeps the old file when produce fails', async () => {
    const d = await dir();
    const out = join(d, 'a.img');
    await writeFile(out, 'old');
    await expect(
      atomicOutput(out, async (tmp) => {
        await writeFile(tmp, 'partial');
        throw new OsbuilderError('VERIFY_FAILED', 'bad', 'h');
      }),
    ).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
    expect(await readdir(d)).toEqual(['a.img']);
    expect(await readFile(out, 'utf8')).toBe('old');
  });
});

describe('atomicDirectory', () => {
  it('replaces an existing directory only after success', async () => {
    const d = await dir();
    const out = join(d, 'rootfs');
    await mkdir(out);
    await writeFile(join(out, 'old'), '1');
    await expect(
      atomicDirectory(out, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await readdir(out)).toEqual(['old']);
    await atomicDirectory(out, async (tmp) => writeFile(join(tmp, 'new'), '2'));
    expect(await readdir(out)).toEqual(['new']);
    expect(await readdir(d)).toEqual(['rootfs']);
  });
});

describe('checkOutputPath', () => {
  const initrd = { flag: '-o', name: 'kata-containers-initrd.img' };

  it('rejects a missing parent directory and a directory as output', async () => {
    const d = await dir();
    await expect(checkOutputPath(join(d, 'missing', 'x.img'), initrd)).rejects.toMatchObject({
      code: 'OUTPUT_INVALID',
      hint: expect.stringContaining('another -o path'),
    });
    await expect(checkOutputPath(d, initrd)).rejects.toMatchObject({ code: 'OUTPUT_INVALID' });
    await expect(checkOutputPath(join(d, 'x.img'), initrd)).resolves.toBeUndefined();
  });

  it("a directory's hint names the caller's example file in it, and that path passes the check", async () => {
    const d = await dir();
    for (const example of [initrd, { flag: '--console-log', name: 'console.log' }]) {
      const err = await checkOutputPath(d, example).catch((e: unknown) => e as { hint: string });
      expect(err?.hint).toBe(`give a file name, e.g. ${example.flag} ${join(d, example.name)}`);
      await expect(checkOutputPath(join(d, example.name), example)).resolves.toBeUndefined();
    }
  });

  it('does not suggest a name that is itself a directory', async () => {
    const d = await dir();
    await mkdir(join(d, initrd.name));
    await expect(checkOutputPath(d, initrd)).rejects.toMatchObject({ hint: 'give -o the path of a file, not a directory' });
  });
});
