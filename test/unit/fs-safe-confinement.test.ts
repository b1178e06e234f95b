import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rm, stat, symlink, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafeRoot, withSafeRoot } from '../../core/fs-safe.js';

/**
 * A hostile rootfs: /usr -> /, /etc -> <outside> (an absolute host path that
 * exists outside the root), /var -> ../../../../.., a final-component link to a
 * host file, and a symlink loop. Every write must stay inside the root.
 */
let base: string;
let root: string;
let outside: string;
let hostFile: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'osb-fssafe-'));
  root = join(base, 'rootfs');
  outside = join(base, 'outside');
  hostFile = join(base, 'host-secret');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(hostFile, 'host data\n');
  await symlink('/', join(root, 'usr'));
  await symlink(outside, join(root, 'etc'));
  await symlink('../../../../../../..', join(root, 'var'));
  await mkdir(join(root, 'bin'));
  await symlink(hostFile, join(root, 'bin', 'kata-agent'));
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
  await mkdir(join(root, 'real', 'sub'), { recursive: true });
  await symlink('real', join(root, 'lib'));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    out.push(e.name);
    if (e.isDirectory()) for (const c of await listTree(join(dir, e.name))) out.push(`${e.name}/${c}`);
  }
  return out;
}

describe('SafeRoot on a hostile rootfs', () => {
  it('the fixture really is hostile: naive host paths escape the root', async () => {
    expect(await realpath(join(root, 'etc'))).toBe(await realpath(outside));
    expect(await realpath(join(root, 'usr'))).toBe('/');
    expect(await realpath(join(root, 'bin/kata-agent'))).toBe(await realpath(hostFile));
  });

  it('resolves absolute symlinks inside the root: /usr -> / lands at the rootfs root', async () => {
    await withSafeRoot(root, async (fs) => {
      await fs.writeFile('/usr/sbin/probe', 'x', { mode: 0o755 });
      expect(await fs.realpath('/usr/sbin/probe')).toBe('/sbin/probe');
    });
    expect((await stat(join(root, 'sbin/probe'))).mode & 0o777).toBe(0o755);
    await expect(stat('/sbin/probe')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('/etc -> <outside> writes into <root>/<outside>, never the host directory', async () => {
    await withSafeRoot(root, async (fs) => {
      await fs.writeFile('/etc/machine-id', '');
      await fs.mkdirp('/etc/systemd/system/basic.target.wants');
      await fs.symlink('/usr/lib/systemd/system/kata-containers.target', '/etc/systemd/system/basic.target.wants/kata-containers.target');
    });
    expect(await readdir(outside)).toEqual([]);
    const inRoot = join(root, outside);
    expect(await readFile(join(inRoot, 'machine-id'), 'utf8')).toBe('');
    expect(await readlink(join(inRoot, 'systemd/system/basic.target.wants/kata-containers.target'))).toBe('/usr/lib/systemd/system/kata-containers.target');
  });

  it('relative links climbing above the root stop at the root', async () => {
    await withSafeRoot(root, async (fs) => {
      await fs.writeFile('/var/lib/osbuilder/osbuilder.yaml', 'a: 1\n');
      expect(await fs.realpath('/var/lib/osbuilder/osbuilder.yaml')).toBe('/real/osbuilder/osbuilder.yaml');
    });
    // /lib -> real inside the root
    expect(await readFile(join(root, 'real/osbuilder/osbuilder.yaml'), 'utf8')).toBe('a: 1\n');
    expect(await readdir(base)).toEqual(['host-secret', 'outside', 'rootfs']);
  });

  it('replaces a symlink at the final component instead of writing through it', async () => {
    await withSafeRoot(root, async (fs) => {
      await fs.writeFile('/bin/kata-agent', 'agent', { mode: 0o755 });
    });
    expect(await readFile(hostFile, 'utf8')).toBe('host data\n');
    const st = await lstat(join(root, 'bin/kata-agent'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o755);
  });

  it('reads through in-root links only', async () => {
    await withSafeRoot(root, async (fs) => {
      // /bin/kata-agent -> <hostFile> resolves to <root>/<hostFile>, which does not exist.
      expect(await fs.readText('/bin/kata-agent')).toBeUndefined();
      await writeFile(join(root, 'real/sub/file'), 'inside');
      expect(await fs.readText('/lib/sub/file')).toBe('inside');
    });
  });

  it('remove never follows: removing /etc drops the link, not the outside dir', async () => {
    await writeFile(join(outside, 'keep'), 'k');
    await withSafeRoot(root, async (fs) => {
      expect(await fs.remove('/etc')).toBe(true);
      expect(await fs.remove('/etc/keep')).toBe(false);
      expect(await fs.remove('/usr/real', { recursive: true })).toBe(true);
    });
    expect(await readFile(join(outside, 'keep'), 'utf8')).toBe('k');
    await expect(lstat(join(root, 'etc'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(join(root, 'real'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('recursive remove of a directory holding escaping links leaves their targets alone', async () => {
    await mkdir(join(root, 'trap'));
    await symlink(outside, join(root, 'trap', 'out'));
    await writeFile(join(outside, 'keep'), 'k');
    await withSafeRoot(root, async (fs) => {
      await fs.remove('/trap', { recursive: true });
      await fs.emptyDir('/lib');
    });
    expect(await readFile(join(outside, 'keep'), 'utf8')).toBe('k');
    expect(await readdir(join(root, 'real'))).toEqual([]);
  });

  it('fails cleanly on symlink loops', async () => {
    await withSafeRoot(root, async (fs) => {
      await expect(fs.writeFile('/loop-a/x', 'x')).rejects.toMatchObject({ code: 'ELOOP' });
      expect(await fs.stat('/loop-a')).toBeUndefined();
    });
  });

  it('copies a host tree in, keeping modes and symlinks verbatim', async () => {
    const src = join(base, 'mods');
    await mkdir(join(src, 'kernel/drivers'), { recursive: true });
    await writeFile(join(src, 'kernel/drivers/a.ko'), 'ko', { mode: 0o600 });
    await symlink('/nonexistent/build', join(src, 'build'));
    await withSafeRoot(root, async (fs) => {
      expect(await fs.copyTreeIn(src, '/usr/lib/modules/6.1.0')).toBe(1);
    });
    expect((await stat(join(root, 'lib/modules/6.1.0/kernel/drivers/a.ko'))).mode & 0o777).toBe(0o600);
    // /lib -> real
    expect(await readlink(join(root, 'real/modules/6.1.0/build'))).toBe('/nonexistent/build');
  });

  it('walkTree and setAllTimes never leave the root', async () => {
    await writeFile(join(outside, 'keep'), 'k');
    const old = new Date('2001-01-01T00:00:00Z');
    await utimes(join(outside, 'keep'), old, old);
    const seen: string[] = [];
    await withSafeRoot(root, async (fs) => {
      await fs.walkTree(({ path }) => {
        seen.push(path);
      });
      await fs.setAllTimes(1_700_000_000);
    });
    expect(seen).toEqual(['/bin', '/bin/kata-agent', '/etc', '/lib', '/loop-a', '/loop-b', '/real', '/real/sub', '/usr', '/var']);
    expect((await stat(join(outside, 'keep'))).mtime.toISOString()).toBe(old.toISOString());
    expect((await lstat(join(root, 'etc'))).mtimeMs).toBe(1_700_000_000_000);
    expect((await stat(join(root, 'real/sub'))).mtimeMs).toBe(1_700_000_000_000);
    expect((await stat(root)).mtimeMs).toBe(1_700_000_000_000);
  });

  it('createExclusive does not clobber', async () => {
    const fs = await SafeRoot.open(root);
    try {
      expect(await fs.createExclusive('/real/x', 'one')).toBe(true);
      expect(await fs.createExclusive('/lib/x', 'two')).toBe(false);
      expect(await fs.readText('/real/x')).toBe('one');
    } finally {
      await fs.close();
    }
    expect(await listTree(join(root, 'real'))).toEqual(['sub', 'x']);
  });
});
