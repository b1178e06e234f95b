import { mkdtemp, readFile, readdir, readlink, writeFile, mkdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installFiles, installNames, type InstallAction } from '../../kernel/install.js';
import { sha256 } from '../../core/hash.js';
import { OsbuilderError } from '../../core/errors.js';

describe('installNames (Kata build-kernel.sh install_kata)', () => {
  it('names the default kernel', () => {
    expect(installNames({ prefix: '/', version: '6.1.62', configVersion: '132' })).toEqual({
      dir: '/usr/share/kata-containers',
      vmlinuz: 'vmlinuz-6.1.62-132',
      vmlinux: 'vmlinux-6.1.62-132',
      config: 'config-6.1.62-132',
      vmlinuzLink: 'vmlinuz.container',
      vmlinuxLink: 'vmlinux.container',
    });
  });

  it('suffixes the GPU and confidential variants (tee first, then -nvidia-gpu)', () => {
    const gpu = installNames({ prefix: '/opt/x', version: '6.1.62', configVersion: '7', gpu: 'nvidia' });
    expect(gpu).toMatchObject({
      dir: '/opt/x/usr/share/kata-containers',
      vmlinux: 'vmlinux-6.1.62-7-nvidia-gpu',
      vmlinuz: 'vmlinuz-6.1.62-7-nvidia-gpu',
      vmlinuxLink: 'vmlinux-nvidia-gpu.container',
      vmlinuzLink: 'vmlinuz-nvidia-gpu.container',
    });
    const both = installNames({ prefix: '/', version: '6.1.62', configVersion: '7', gpu: 'nvidia', confidential: 'tdx' });
    expect(both.vmlinux).toBe('vmlinux-6.1.62-7-tdx-nvidia-gpu');
    expect(both.vmlinuxLink).toBe('vmlinux-tdx-nvidia-gpu.container');
  });
});

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'osb-kinstall-'));
  const src = join(root, 'src');
  await mkdir(src);
  const dir = join(root, 'usr/share/kata-containers');
  const write = async (name: string, text: string) => {
    await writeFile(join(src, name), text);
    return { path: join(src, name), sha256: sha256(text) };
  };
  const actions = async (kernel: string): Promise<InstallAction[]> => {
    const z = await write('bzImage', `bz-${kernel}`);
    const x = await write('vmlinux', `elf-${kernel}`);
    return [
      { kind: 'file', from: z.path, to: join(dir, 'vmlinuz-6.1-1'), sha256: z.sha256 },
      { kind: 'file', from: x.path, to: join(dir, 'vmlinux-6.1-1'), sha256: x.sha256 },
      { kind: 'link', target: 'vmlinuz-6.1-1', to: join(dir, 'vmlinuz.container') },
      { kind: 'link', target: 'vmlinux-6.1-1', to: join(dir, 'vmlinux.container') },
    ];
  };
  return { root, dir, actions };
}

describe('installFiles', () => {
  it('writes files and symlinks, then reports unchanged on a second identical install', async () => {
    const { dir, actions } = await setup();
    const a = await actions('one');
    const first = await installFiles(dir, a, false);
    expect(first.installed.map((i) => i.status)).toEqual(['written', 'written', 'written', 'written']);
    expect(await readFile(join(dir, 'vmlinuz-6.1-1'), 'utf8')).toBe('bz-one');
    expect(await readlink(join(dir, 'vmlinux.container'))).toBe('vmlinux-6.1-1');
    expect(((await lstat(join(dir, 'vmlinux-6.1-1'))).mode & 0o777).toString(8)).toBe('644');
    const again = await installFiles(dir, a, false);
    expect(again.installed.map((i) => i.status)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    expect((await readdir(dir)).sort()).toEqual(['vmlinux-6.1-1', 'vmlinux.container', 'vmlinuz-6.1-1', 'vmlinuz.container']);
  });

  it('refuses to replace a different file without force, writing nothing', async () => {
    const { dir, actions } = await setup();
    await installFiles(dir, await actions('one'), false);
    const b = await actions('two');
    let err: unknown;
    try {
      await installFiles(dir, b, false);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsbuilderError);
    expect((err as OsbuilderError).code).toBe('OUTPUT_EXISTS');
    expect((err as Error).message).toContain('vmlinuz-6.1-1');
    expect(await readFile(join(dir, 'vmlinuz-6.1-1'), 'utf8')).toBe('bz-one');
    expect(await readFile(join(dir, 'vmlinux-6.1-1'), 'utf8')).toBe('elf-one');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const forced = await installFiles(dir, b, true);
    expect(forced.installed.map((i) => i.status)).toEqual(['replaced', 'replaced', 'unchanged', 'unchanged']);
    expect(await readFile(join(dir, 'vmlinuz-6.1-1'), 'utf8')).toBe('bz-two');
  });

  it('treats a regular file where a symlink belongs as different', async () => {
    const { dir, actions } = await setup();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'vmlinux.container'), 'not a link');
    await expect(installFiles(dir, await actions('one'), false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(await readdir(dir)).toEqual(['vmlinux.container']);
  });

  it('fails and cleans up when a copied file does not match its recorded sha256', async () => {
    const { dir, actions } = await setup();
    const a = await actions('one');
    (a[0] as { sha256: string }).sha256 = sha256('something else');
    await expect(installFiles(dir, a, false)).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
    expect(await readdir(dir)).toEqual([]);
  });
});
