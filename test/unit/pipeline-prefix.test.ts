import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPrefix, pseudoFsOf } from '../../pipeline/prefix.js';

const dirsOf = (p: string) => [join(p, 'usr/share/kata-containers'), join(p, 'usr/share/defaults/kata-containers')];

describe('install root check', () => {
  it('names the pseudo file system a path lies in, and only whole components', () => {
    expect(pseudoFsOf('/proc')).toBe('/proc');
    expect(pseudoFsOf('/proc/x/y')).toBe('/proc');
    expect(pseudoFsOf('/sys/kernel')).toBe('/sys');
    expect(pseudoFsOf('/processes')).toBeUndefined();
    expect(pseudoFsOf('/system/x')).toBeUndefined();
    expect(pseudoFsOf('/dev/shm/out')).toBeUndefined();
  });

  it('accepts a missing prefix under a writable directory and an existing install, and leaves no trace', async () => {
    const t = await mkdtemp(join(tmpdir(), 'osb-prefix-'));
    try {
      await checkPrefix(join(t, 'new/prefix'), dirsOf(join(t, 'new/prefix')));
      expect(await readdir(t)).toEqual([]);
      await mkdir(join(t, 'old/usr/share/kata-containers'), { recursive: true });
      await checkPrefix(join(t, 'old'), dirsOf(join(t, 'old')));
      expect(await readdir(join(t, 'old/usr/share'))).toEqual(['kata-containers']);
    } finally {
      await rm(t, { recursive: true, force: true });
    }
  });

  it('refuses a file where a directory must be, naming it', async () => {
    const t = await mkdtemp(join(tmpdir(), 'osb-prefix-'));
    try {
      await writeFile(join(t, 'f'), '');
      await expect(checkPrefix(join(t, 'f'), dirsOf(join(t, 'f')))).rejects.toMatchObject({
        code: 'INPUT_INVALID',
        message: `--prefix ${t}/f: ${t}/f is not a directory`,
      });
      await expect(checkPrefix('/proc/1/x', dirsOf('/proc/1/x'))).rejects.toMatchObject({
        code: 'INPUT_INVALID',
        message: expect.stringContaining('/proc is the kernel'),
      });
    } finally {
      await rm(t, { recursive: true, force: true });
    }
  });
});
