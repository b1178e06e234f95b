import { mkdtemp, open, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkTarEntry, extractTarball, obtainSource, planSource } from '../../kernel/source.js';
import { sha256 } from '../../core/hash.js';
import { runInterruptHandlers } from '../../core/cleanup.js';

/** A raw ustar archive, written by hand so hostile entries can be expressed. */
type Entry = { name: string; type?: '0' | '1' | '2' | '3' | '5' | '6'; body?: string; link?: string; mode?: number };

function header(e: Entry): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (off: number, len: number, s: string) => h.write(s.slice(0, len), off, 'utf8');
  const oct = (off: number, len: number, n: number) => put(off, len, `${n.toString(8).padStart(len - 1, '0')}\0`);
  put(0, 100, e.name);
  oct(100, 8, e.mode ?? (e.type === '5' ? 0o755 : 0o644));
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, Buffer.byteLength(e.body ?? ''));
  oct(136, 12, 1700000000);
  put(148, 8, '        ');
  put(156, 1, e.type ?? '0');
  put(157, 100, e.link ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function tarball(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    const body = Buffer.from(e.body ?? '');
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

const GOOD: Entry[] = [
  { name: 'linux-6.1.1/', type: '5' },
  { name: 'linux-6.1.1/Makefile', body: 'VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 1\nEXTRAVERSION =\n' },
  { name: 'linux-6.1.1/scripts/', type: '5' },
  { name: 'linux-6.1.1/scripts/run.sh', body: '#!/bin/sh\n', mode: 0o755 },
  { name: 'linux-6.1.1/scripts/dtc-link', type: '2', link: '../Makefile' },
  { name: 'linux-6.1.1/Makefile.hard', type: '1', link: 'linux-6.1.1/Makefile' },
];

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'osb-ksrc-'));
}

async function writeTar(dir: string, name: string, entries: Entry[], compress: 'gz' | 'xz' = 'gz'): Promise<string> {
  const raw = tarball(entries);
  const path = join(dir, name);
  if (compress === 'gz') await writeFile(path, gzipSync(raw));
  else await writeFile(path, execFileSync('xz', ['-c', '-T1'], { input: raw }));
  return path;
}

describe('checkTarEntry', () => {
  it('accepts normal entries and links that stay inside the top directory', () => {
    expect(checkTarEntry('linux/Makefile', 'File', undefined, undefined)).toEqual({ top: 'linux' });
    expect(checkTarEntry('./linux/a/b', 'File', undefined, 'linux').why).toBeUndefined();
    expect(checkTarEntry('linux/a/link', 'SymbolicLink', '../b', 'linux').why).toBeUndefined();
    expect(checkTarEntry('linux/x', 'Link', 'linux/a/b', 'linux').why).toBeUndefined();
  });

  it('rejects escapes, absolute paths and links, foreign top dirs and device nodes', () => {
    expect(checkTarEntry('/etc/passwd', 'File', undefined, 'linux').why).toBe('absolute path');
    expect(checkTarEntry('linux/../../evil', 'File', undefined, 'linux').why).toBe('path contains ..');
    expect(checkTarEntry('other/file', 'File', undefined, 'linux').why).toMatch(/outside the top-level directory/);
    expect(checkTarEntry('linux/l', 'SymbolicLink', '/etc', 'linux').why).toBe('absolute symlink to /etc');
    expect(checkTarEntry('linux/a/l', 'SymbolicLink', '../../../tmp', 'linux').why).toMatch(/escapes the tree/);
    expect(checkTarEntry('linux/h', 'Link', '../outside', 'linux').why).toMatch(/hard link/);
    expect(checkTarEntry('linux/h', 'Link', '/etc/shadow', 'linux').why).toMatch(/hard link/);
    expect(checkTarEntry('linux/dev', 'CharacterDevice', undefined, 'linux').why).toMatch(/not allowed/);
  });
});

describe('extractTarball', () => {
  it('extracts a .tar.gz and a .tar.xz, stripping the top directory and keeping inside links', async () => {
    for (const c of ['gz', 'xz'] as const) {
      const dir = await tmp();
      const t = await writeTar(dir, `linux.tar.${c}`, GOOD, c);
      const dest = join(dir, 'tree');
      const r = await extractTarball(t, c === 'gz' ? 'gzip' : 'xz', dest);
      expect(r).toEqual({ topDir: 'linux-6.1.1', entries: 6 });
      expect(await readFile(join(dest, 'Makefile'), 'utf8')).toContain('SUBLEVEL = 1');
      expect(await readlink(join(dest, 'scripts/dtc-link'))).toBe('../Makefile');
      expect(await readFile(join(dest, 'Makefile.hard'), 'utf8')).toContain('VERSION = 6');
      expect(((await stat(join(dest, 'scripts/run.sh'))).mode & 0o777).toString(8)).toBe('755');
      expect((await readdir(dir)).sort()).toEqual([`linux.tar.${c}`, 'tree']);
    }
  });

  const hostile: Array<[string, Entry]> = [
    ['dot-dot path', { name: 'linux-6.1.1/../../escaped', body: 'x' }],
    ['absolute path', { name: '/tmp/osb-absolute-escape', body: 'x' }],
    ['absolute symlink', { name: 'linux-6.1.1/etc', type: '2', link: '/etc' }],
    ['escaping symlink', { name: 'linux-6.1.1/scripts/up', type: '2', link: '../../..' }],
    ['escaping hard link', { name: 'linux-6.1.1/shadow', type: '1', link: '/etc/shadow' }],
    ['second top directory', { name: 'other/file', body: 'x' }],
    ['character device', { name: 'linux-6.1.1/null', type: '3' }],
    ['fifo', { name: 'linux-6.1.1/fifo', type: '6' }],
  ];
  for (const [what, evil] of hostile) {
    it(`refuses a tarball with a ${what} and extracts nothing`, async () => {
      const dir = await tmp();
      const t = await writeTar(dir, 'evil.tar.gz', [...GOOD.slice(0, 2), evil, ...GOOD.slice(2)]);
      const dest = join(dir, 'tree');
      await expect(extractTarball(t, 'gzip', dest)).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringContaining('unsafe entries') });
      expect(await readdir(dir)).toEqual(['evil.tar.gz']);
      expect(await stat('/tmp/osb-absolute-escape').catch(() => undefined)).toBeUndefined();
      expect(await stat(join(dir, '..', 'escaped')).catch(() => undefined)).toBeUndefined();
    });
  }

  it('refuses a file written through an escaping symlink, and nothing lands outside while GNU tar writes beside the check', async () => {
    const dir = await tmp();
    const name = `osb-through-link-${process.pid}-${Date.now()}`;
    // The tree's temp dir is <dir>/tree.extract-…: ../.. from it is the parent of <dir>.
    const evil: Entry[] = [
      { name: 'linux-6.1.1/esc', type: '2', link: '../..' },
      { name: `linux-6.1.1/esc/${name}`, body: 'escaped' },
    ];
    const filler: Entry[] = Array.from({ length: 200 }, (_, i) => ({ name: `linux-6.1.1/fill${i}`, body: 'y'.repeat(4096) }));
    for (const entries of [
      [...GOOD, ...evil],
      [...GOOD, ...filler, ...evil, ...filler.map((f) => ({ ...f, name: `${f.name}b` }))],
    ]) {
      const t = await writeTar(dir, 'evil.tar.xz', entries, 'xz');
      await expect(extractTarball(t, 'xz', join(dir, 'tree'))).rejects.toMatchObject({
        code: 'INPUT_INVALID',
        message: expect.stringContaining('symlink to ../.. escapes the tree'),
      });
      expect(await readdir(dir)).toEqual(['evil.tar.xz']);
      expect(await stat(join(dir, '..', name)).catch(() => undefined)).toBeUndefined();
    }
  });

  it('reports a truncated or non-tar file as corrupt and leaves nothing behind', async () => {
    const dir = await tmp();
    const full = await readFile(await writeTar(dir, 'ok.tar.xz', GOOD, 'xz'));
    const cut = join(dir, 'cut.tar.xz');
    await writeFile(cut, full.subarray(0, Math.floor(full.length / 2)));
    await expect(extractTarball(cut, 'xz', join(dir, 't1'))).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: expect.stringContaining('not a valid .tar.xz'),
    });
    const junk = join(dir, 'junk.tar.gz');
    await writeFile(junk, 'this is not a tarball at all');
    await expect(extractTarball(junk, 'gzip', join(dir, 't2'))).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    const gzJunk = join(dir, 'gzjunk.tar.gz');
    await writeFile(gzJunk, gzipSync(Buffer.from('plain text, gzip-compressed, no tar headers at all '.repeat(40))));
    await expect(extractTarball(gzJunk, 'gzip', join(dir, 't3'))).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    expect((await readdir(dir)).sort()).toEqual(['cut.tar.xz', 'gzjunk.tar.gz', 'junk.tar.gz', 'ok.tar.xz']);
  });

  it('a tarball cut short while files are still being written: INPUT_INVALID, and the partial tree is removed though late writes still land (was INTERNAL ENOTEMPTY)', async () => {
    const dir = await tmp();
    // Like a kernel tarball's first megabyte: many small files in many directories, then the cut.
    const many: Entry[] = [...GOOD];
    for (let d = 0; d < 40; d++) {
      many.push({ name: `linux-6.1.1/Documentation/d${d}/`, type: '5' });
      for (let f = 0; f < 40; f++) many.push({ name: `linux-6.1.1/Documentation/d${d}/f${f}.rst`, body: `${d}/${f}\n`.repeat(200) });
    }
    const raw = tarball(many);
    const cut = join(dir, 'cut.tar.xz');
    await writeFile(cut, execFileSync('xz', ['-c', '-T1'], { input: raw.subarray(0, raw.length - 1024 - 512 - 300) }));
    for (let round = 0; round < 5; round++) {
      await expect(extractTarball(cut, 'xz', join(dir, 'tree'))).rejects.toMatchObject({
        code: 'INPUT_INVALID',
        message: expect.stringContaining('Truncated input'),
      });
      expect(await readdir(dir)).toEqual(['cut.tar.xz']);
    }
  }, 60_000);

  it('a tarball cut between entries (a whole header or the end blocks missing) is INPUT_INVALID, not a partial tree (found by parsers-property)', async () => {
    const dir = await tmp();
    const raw = tarball(GOOD);
    // Cut after the first two entries (a directory and a one-block file), and just before the second end block.
    for (const [i, end] of [512 * 3, raw.length - 512].entries()) {
      const t = join(dir, `cut${i}.tar.gz`);
      await writeFile(t, gzipSync(raw.subarray(0, end)));
      await expect(extractTarball(t, 'gzip', join(dir, 'tree'))).rejects.toMatchObject({
        code: 'INPUT_INVALID',
        message: expect.stringContaining('end-of-archive blocks (truncated)'),
      });
    }
    expect((await readdir(dir)).sort()).toEqual(['cut0.tar.gz', 'cut1.tar.gz']);
  });
});

describe('extractTarball interrupted', () => {
  it('SIGINT/SIGTERM cleanup stops the unpack and removes the partial tree', async () => {
    const dir = await tmp();
    // A FIFO as the tarball: the archive arrives only as fast as the test writes it.
    const fifo = join(dir, 'slow.tar.gz');
    execFileSync('mkfifo', [fifo]);
    const big: Entry = { name: 'linux-6.1.1/big.bin', body: 'x'.repeat(1 << 20) };
    const gz = gzipSync(tarball([...GOOD, big]), { level: 0 });
    const outcome = extractTarball(fifo, 'gzip', join(dir, 'tree')).then(
      () => 'extracted',
      (err: unknown) => err,
    );
    const writer = await open(fifo, 'w'); // resolves once the extraction opened the read side
    await writer.write(gz.subarray(0, gz.length >> 1));
    await runInterruptHandlers();
    expect(await outcome).toMatchObject({ code: 'INTERRUPTED' });
    await writer.close();
    expect(await readdir(dir)).toEqual(['slow.tar.gz']);
  });
});

describe('obtainSource', () => {
  it('verifies a local tarball against --sha256 (mismatch: CHECKSUM_MISMATCH)', async () => {
    const dir = await tmp();
    const t = await writeTar(dir, 'linux.tar.gz', GOOD);
    const real = sha256(await readFile(t));
    const ok = await obtainSource(planSource({ source: t, sha256: real }));
    expect(ok).toMatchObject({ tarball: t, sha256: real, verified: true, compression: 'gzip' });
    const unverified = await obtainSource(planSource({ source: t }));
    expect(unverified.verified).toBe(false);
    await expect(obtainSource(planSource({ source: t, sha256: '0'.repeat(64) }))).rejects.toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    await expect(obtainSource(planSource({ source: join(dir, 'missing.tar.xz') }))).rejects.toMatchObject({ code: 'INPUT_NOT_FOUND' });
  });

  it('fails with DOWNLOAD_FAILED at the network boundary, leaving no partial file', async () => {
    const dir = await tmp();
    // Port 9 on localhost: nothing listens, the connection is refused immediately.
    const spec = planSource({ source: 'http://127.0.0.1:9/linux-6.1.1.tar.xz', sha256: '1'.repeat(64) });
    await expect(obtainSource(spec, dir)).rejects.toMatchObject({ code: 'DOWNLOAD_FAILED' });
    const sums = {
      ...planSource({ version: '6.1.1' }),
      location: 'http://127.0.0.1:9/v6.x/linux-6.1.1.tar.xz',
      sumsUrl: 'http://127.0.0.1:9/v6.x/sha256sums.asc',
    };
    await expect(obtainSource(sums, dir)).rejects.toMatchObject({ code: 'DOWNLOAD_FAILED', message: expect.stringContaining('sha256sums.asc') });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('hints name the flags of the command that was run', () => {
  const build = { source: '--kernel-source', sha256: '--kernel-sha256' };
  it('osbuilder build: --kernel-source and --kernel-sha256; kernel setup: --source and --sha256', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-flags-'));
    const tarball = join(dir, 'linux-6.1.tar.gz');
    await writeFile(tarball, 'not the right bytes');
    for (const [flags, source, sum] of [
      [build, '--kernel-source', '--kernel-sha256'],
      [undefined, '--source', '--sha256'],
    ] as const) {
      const missing = await obtainSource(planSource({ source: join(dir, 'absent.tar.xz'), ...(flags ? { flags } : {}) }), dir).catch((e: unknown) => e);
      expect(missing).toMatchObject({ code: 'INPUT_NOT_FOUND', hint: expect.stringContaining(`omit ${source} `) });
      const wrong = await obtainSource(planSource({ source: tarball, sha256: '0'.repeat(64), ...(flags ? { flags } : {}) }), dir).catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: 'CHECKSUM_MISMATCH', hint: expect.stringContaining(`fix ${sum};`) });
      expect(() => planSource({ sha256: 'xyz', version: '6.1', ...(flags ? { flags } : {}) })).toThrow(
        expect.objectContaining({ message: expect.stringContaining(sum) }),
      );
    }
  });
});
