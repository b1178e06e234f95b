import { beforeAll, describe, expect, it } from 'vitest';
import { lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { carriedEntries, DEFAULTS, plannedDigest, renderQemuConfig, renderSha256Sums, SHARE, writeInstall, type InstallEntry } from '../../pipeline/install.js';
import { artifactEntries, configEntries, planInstall, recordedImageBoot } from '../../pipeline/install-plan.js';
import { planBuild } from '../../pipeline/plan.js';
import { treeDigest } from '../../pipeline/switch.js';
import { fsClock } from '../../core/stamp.js';
import { readRecord, recordPath } from '../../pipeline/record.js';
import { parseConfig } from '../../runtime/config.js';
import { sha256 } from '../../core/hash.js';
import type { KernelArtifact, RootfsArtifact } from '../../pipeline/stages.js';
import { installNames } from '../../kernel/index.js';

// Install records go to the build cache: this file's own.
beforeAll(async () => {
  process.env.OSBUILDER_CACHE_DIR = await mkdtemp(join(tmpdir(), 'osb-install-cache-'));
});

describe('configuration-qemu.toml', () => {
  it('is read back by the runtime without warnings; the image wins, the initrd is left commented', () => {
    const text = renderQemuConfig({
      qemuPath: '/usr/bin/qemu-system-x86_64',
      machineType: 'q35',
      kernel: '/p/vmlinuz.container',
      image: '/p/kata-containers.img',
      initrd: '/p/kata-containers-initrd.img',
      toolVersion: '1.2.3',
    });
    const c = parseConfig(text, 'configuration-qemu.toml');
    expect(c.warnings).toEqual([]);
    expect(c.hypervisor).toMatchObject({
      path: '/usr/bin/qemu-system-x86_64',
      kernel: '/p/vmlinuz.container',
      image: '/p/kata-containers.img',
      initrd: null,
      machineType: 'q35',
      defaultMemory: 2048,
      disableImageNvdimm: false,
      sharedFs: 'virtio-9p',
      msize9p: 8192,
    });
    expect(c.agent).toEqual({ enableDebug: false, dialTimeout: 45, kernelModules: [] });
    expect(text).toContain('# initrd = "/p/kata-containers-initrd.img"');
    const initrdOnly = parseConfig(renderQemuConfig({ qemuPath: 'q', machineType: 'q35', kernel: 'k', initrd: '/p/i', toolVersion: '1' }), 'x.toml');
    expect(initrdOnly.hypervisor).toMatchObject({ image: null, initrd: '/p/i' });
  });

  it("aarch64: Kata's arm64 build options (kernel params, AAVMF firmware, pmu=off); x86_64 has none of them", () => {
    const text = renderQemuConfig({
      arch: 'aarch64',
      qemuPath: '/usr/bin/qemu-system-aarch64',
      machineType: 'virt',
      kernel: '/p/vmlinux.container',
      image: '/p/kata-containers.img',
      toolVersion: '1',
    });
    const lines = text.split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'path = "/usr/bin/qemu-system-aarch64"',
        'machine_type = "virt"',
        'kernel_params = "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"',
        'firmware = "/usr/share/AAVMF/AAVMF_CODE.fd"',
        'firmware_volume = "/usr/share/AAVMF/AAVMF_VARS.fd"',
        'cpu_features = "pmu=off"',
      ]),
    );
    const c = parseConfig(text, 'configuration-qemu.toml', 'aarch64');
    expect(c.warnings).toEqual([]);
    expect(c.hypervisor).toMatchObject({
      path: '/usr/bin/qemu-system-aarch64',
      machineType: 'virt',
      kernelParams: 'cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1',
    });
    const x86 = renderQemuConfig({ arch: 'x86_64', qemuPath: 'q', machineType: 'q35', kernel: 'k', image: '/i', toolVersion: '1' });
    expect(x86).toContain('kernel_params = ""');
    expect(x86).not.toMatch(/^(firmware|firmware_volume|cpu_features) =/m);
  });
});

function fakeRootfs(role: 'image' | 'initrd', fileName: string): RootfsArtifact {
  return {
    role,
    distro: 'd',
    version: 'v',
    initMode: role === 'image' ? 'systemd' : 'agent-init',
    fileName,
    path: `/cache/${fileName}`,
    sha256: sha256(fileName),
    size: 1,
    packages: [],
    osRelease: '',
    key: 'k',
    inputs: {},
    cached: false,
    buildMs: 0,
  };
}

function fakeKernel(variant: 'default' | 'nvidia'): KernelArtifact {
  const names = installNames({ prefix: '/', version: '6.1.9', configVersion: '7', ...(variant === 'nvidia' ? { gpu: 'nvidia' } : {}) });
  const files = [
    names.vmlinuz,
    names.vmlinux,
    names.config,
    ...(variant === 'nvidia' ? ['linux-headers-6.1.9-nvidia.tar.gz', 'linux-image-6.1.9-kata_6.1.9-1_amd64.deb'] : []),
  ].map((name) => ({ name, path: `/cache/${name}`, sha256: sha256(name), size: 1 }));
  return {
    variant,
    version: '6.1.9',
    release: '6.1.9',
    configVersion: '7',
    configSha256: '',
    source: { origin: '', sha256: '' },
    fragmentsHash: '',
    files,
    names,
    vmlinuz: `/cache/${names.vmlinuz}`,
    vmlinuzSha256: '',
    key: '',
    inputs: {},
    cached: false,
    buildMs: 0,
  };
}

describe('artifactEntries + configEntries', () => {
  it("lays out Kata's names, links and one configuration per kernel variant", () => {
    const plan = planBuild({ prefix: '/p', gpu: 'nvidia', image: true, initrd: true }, undefined, 'x86_64');
    const artifacts = artifactEntries(
      [fakeRootfs('image', 'kata-debian-bookworm.image'), fakeRootfs('initrd', 'kata-busybox-bookworm.initrd')],
      [fakeKernel('default'), fakeKernel('nvidia')],
    );
    const entries = [...artifacts, ...configEntries(plan, artifacts, '/usr/bin/qemu-system-x86_64', 'q35')];
    const shown = entries.map((e) => (e.kind === 'link' ? `${e.path} -> ${e.target}` : e.path)).sort();
    expect(shown).toEqual([
      `${DEFAULTS}/configuration-qemu-nvidia-gpu.toml`,
      `${DEFAULTS}/configuration-qemu.toml`,
      `${SHARE}/config-6.1.9-7`,
      `${SHARE}/config-6.1.9-7-nvidia-gpu`,
      `${SHARE}/kata-busybox-bookworm.initrd`,
      `${SHARE}/kata-containers-initrd.img -> kata-busybox-bookworm.initrd`,
      `${SHARE}/kata-containers.img -> kata-debian-bookworm.image`,
      `${SHARE}/kata-debian-bookworm.image`,
      `${SHARE}/kernel-devel/linux-headers-6.1.9-nvidia.tar.gz`,
      `${SHARE}/kernel-devel/linux-image-6.1.9-kata_6.1.9-1_amd64.deb`,
      `${SHARE}/vmlinux-6.1.9-7`,
      `${SHARE}/vmlinux-6.1.9-7-nvidia-gpu`,
      `${SHARE}/vmlinux-nvidia-gpu.container -> vmlinux-6.1.9-7-nvidia-gpu`,
      `${SHARE}/vmlinux.container -> vmlinux-6.1.9-7`,
      `${SHARE}/vmlinuz-6.1.9-7`,
      `${SHARE}/vmlinuz-6.1.9-7-nvidia-gpu`,
      `${SHARE}/vmlinuz-nvidia-gpu.container -> vmlinuz-6.1.9-7-nvidia-gpu`,
      `${SHARE}/vmlinuz.container -> vmlinuz-6.1.9-7`,
    ]);
    const gpu = entries.find((e) => e.path.endsWith('nvidia-gpu.toml'));
    expect(gpu?.kind === 'text' && parseConfig(gpu.content, 'x').hypervisor.kernel).toBe('/p/usr/share/kata-containers/vmlinuz-nvidia-gpu.container');
  });

  it('a partial build configures what the install will hold: the kept image wins over a new initrd', () => {
    const plan = planBuild({ prefix: '/p', initrd: true }, undefined, 'x86_64');
    const artifacts = artifactEntries([fakeRootfs('initrd', 'kata-busybox-bookworm.initrd')], []);
    const kept: InstallEntry[] = [
      { kind: 'link', path: `${SHARE}/kata-containers.img`, target: 'kata-debian-bookworm.image' },
      { kind: 'link', path: `${SHARE}/vmlinuz.container`, target: 'vmlinuz-6.1.9-7' },
    ];
    const [cfg, ...more] = configEntries(plan, [...artifacts, ...kept], 'q', 'q35');
    expect(more).toEqual([]);
    const c = parseConfig(cfg!.kind === 'text' ? cfg!.content : '', 'x');
    expect(c.hypervisor).toMatchObject({
      kernel: '/p/usr/share/kata-containers/vmlinuz.container',
      image: '/p/usr/share/kata-containers/kata-containers.img',
      initrd: null,
    });
    expect(configEntries(plan, [], 'q', 'q35')).toEqual([]);
  });

  it('a verity image installs its kernel_verity_params as root_hash_.txt and in the configuration the runtime reads; an initrd configuration never carries them', () => {
    const params = `root_hash=${'a'.repeat(64)},salt=${'b'.repeat(64)},data_blocks=100,data_block_size=4096,hash_block_size=4096`;
    const plan = planBuild({ prefix: '/p', imageOptions: { verity: true } }, undefined, 'x86_64');
    const artifacts = artifactEntries(
      [{ ...fakeRootfs('image', 'kata-debian-bookworm.image'), kernelVerityParams: params }, fakeRootfs('initrd', 'kata-busybox-bookworm.initrd')],
      [fakeKernel('default')],
    );
    expect(artifacts.find((e) => e.path === `${SHARE}/root_hash_.txt`)).toEqual({ kind: 'text', path: `${SHARE}/root_hash_.txt`, content: `${params}\n` });
    const [cfg] = configEntries(plan, artifacts, 'q', 'q35', params);
    const c = parseConfig(cfg!.kind === 'text' ? cfg!.content : '', 'x');
    expect(c.warnings).toEqual([]);
    expect(c.hypervisor).toMatchObject({ image: '/p/usr/share/kata-containers/kata-containers.img', kernelVerityParams: params });
    expect(renderQemuConfig({ qemuPath: 'q', machineType: 'q35', kernel: 'k', initrd: '/p/i', kernelVerityParams: params, toolVersion: '1' })).not.toContain(
      'kernel_verity_params',
    );
    expect(artifactEntries([fakeRootfs('image', 'kata-debian-bookworm.image')], []).some((e) => e.path.endsWith('root_hash_.txt'))).toBe(false);
  });
});

async function sourceFile(dir: string, name: string, content: string): Promise<InstallEntry> {
  const p = join(dir, name);
  await writeFile(p, content);
  return { kind: 'file', path: `${SHARE}/${name}`, from: p, sha256: sha256(content), size: content.length };
}

describe('writeInstall', () => {
  it('stages and switches; identical plans are left alone; a different install needs force; partial builds carry the rest', async () => {
    const d = await mkdtemp(join(tmpdir(), 'osb-install-'));
    const src = join(d, 'src');
    await mkdir(src);
    const prefix = join(d, 'prefix');
    const a = await sourceFile(src, 'a.image', 'A');
    const k = await sourceFile(src, 'vmlinuz-1', 'K');
    const entries: InstallEntry[] = [
      a,
      k,
      { kind: 'link', path: `${SHARE}/kata-containers.img`, target: 'a.image' },
      { kind: 'text', path: `${DEFAULTS}/configuration-qemu.toml`, content: 'x = 1\n' },
    ];
    entries.push({ kind: 'text', path: `${SHARE}/SHA256SUMS`, content: renderSha256Sums(entries) });
    expect(await writeInstall(prefix, entries, false)).toBe('installed');
    expect(await readFile(join(prefix, SHARE, 'SHA256SUMS'), 'utf8')).toBe(
      `${sha256('x = 1\n')}  ${DEFAULTS}/configuration-qemu.toml\n${sha256('A')}  ${SHARE}/a.image\n${sha256('K')}  ${SHARE}/vmlinuz-1\n`,
    );
    expect(plannedDigest(entries, SHARE)).toEqual(await treeDigest(join(prefix, SHARE)));
    expect(await writeInstall(prefix, entries, false)).toBe('unchanged');

    const b = await sourceFile(src, 'a.image', 'B');
    const changed = entries.map((e) => (e.path === a.path ? b : e));
    await expect(writeInstall(prefix, changed, false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(await readFile(join(prefix, SHARE, 'a.image'), 'utf8')).toBe('A');

    // A partial build (a new image only) keeps the installed kernel.
    const partial: InstallEntry[] = [b, { kind: 'link', path: `${SHARE}/kata-containers.img`, target: 'a.image' }];
    const carried = await carriedEntries(prefix, partial);
    // The configuration is regenerated for the whole install, never carried.
    expect(carried.map((c) => c.path).sort()).toEqual([`${SHARE}/vmlinuz-1`]);
    expect(await writeInstall(prefix, [...partial, ...carried], true)).toBe('replaced');
    expect(await readFile(join(prefix, SHARE, 'a.image'), 'utf8')).toBe('B');
    expect(await readFile(join(prefix, SHARE, 'vmlinuz-1'), 'utf8')).toBe('K');
    expect(await readlink(join(prefix, SHARE, 'kata-containers.img'))).toBe('a.image');
    // No staged or old trees, clock probes or records are left beside the install: the record is in the cache.
    expect((await readdir(join(prefix, 'usr/share'))).sort()).toEqual(['defaults', 'kata-containers']);
    expect((await readdir(join(prefix, 'usr/share/defaults'))).sort()).toEqual(['kata-containers']);
    expect(recordPath(join(prefix, SHARE)).startsWith(`${join(process.env.OSBUILDER_CACHE_DIR!, 'install-records')}/`)).toBe(true);
  });
});

/** Returns once the filesystem's clock beside `path` has moved past the file's ctime (a condition, not a delay). */
async function pastCtime(path: string): Promise<void> {
  const { ctimeNs } = await lstat(path, { bigint: true });
  while ((await fsClock(path)) <= ctimeNs);
}

describe('warm install check (the record)', () => {
  async function installed() {
    const d = await mkdtemp(join(tmpdir(), 'osb-record-'));
    const src = join(d, 'src');
    await mkdir(src);
    const prefix = join(d, 'prefix');
    const entries: InstallEntry[] = [
      await sourceFile(src, 'a.image', 'AAAA'),
      { kind: 'text', path: `${DEFAULTS}/configuration-qemu.toml`, content: 'x = 1\n' },
    ];
    expect(await writeInstall(prefix, entries, false)).toBe('installed');
    const image = join(prefix, SHARE, 'a.image');
    // Recorded once its ctime is older than a check's clock probe: wait for the clock, then check.
    await pastCtime(image);
    expect(await writeInstall(prefix, entries, false)).toBe('unchanged');
    expect((await readRecord(join(prefix, SHARE))).get('a.image')?.sha256).toBe(sha256('AAAA'));
    return { prefix, entries, image };
  }

  it('an unchanged install is unchanged, and a recorded file is not hashed again', async () => {
    const { prefix, entries } = await installed();
    expect(await writeInstall(prefix, entries, false)).toBe('unchanged');
    // The digest takes the recorded sha256 while the stamp matches (a lie in the record shows through).
    const record = JSON.parse(await readFile(recordPath(join(prefix, SHARE)), 'utf8'));
    record['a.image'].sha256 = sha256('other');
    await writeFile(recordPath(join(prefix, SHARE)), JSON.stringify(record));
    expect((await treeDigest(join(prefix, SHARE), { known: await readRecord(join(prefix, SHARE)) })).get('a.image')).toBe(`file:${sha256('other')}`);
  });

  it('a changed installed file is detected', async () => {
    const { prefix, entries, image } = await installed();
    await writeFile(image, 'BB');
    await expect(writeInstall(prefix, entries, false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(await writeInstall(prefix, entries, true)).toBe('replaced');
    expect(await readFile(image, 'utf8')).toBe('AAAA');
  });

  it('a file changed in place with its size and mtime restored is detected (its ctime moved)', async () => {
    const { prefix, entries, image } = await installed();
    // A whole-second mtime can be restored exactly; record the file with it.
    await utimes(image, 1700000000, 1700000000);
    await pastCtime(image);
    expect(await writeInstall(prefix, entries, false)).toBe('unchanged');
    const recorded = (await readRecord(join(prefix, SHARE))).get('a.image')?.stamp;
    const before = await lstat(image, { bigint: true });
    expect(recorded).toContain(`:${before.mtimeNs}:${before.ctimeNs}`);
    await pastCtime(image);
    const fh = await open(image, 'r+');
    await fh.write('ZZZZ', 0);
    await fh.close();
    await utimes(image, 1700000000, 1700000000);
    const after = await lstat(image, { bigint: true });
    expect([after.ino, after.size, after.mtimeNs]).toEqual([before.ino, before.size, before.mtimeNs]);
    await expect(writeInstall(prefix, entries, false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
  });

  it('a missing or corrupt record only means hashing everything', async () => {
    const { prefix, entries, image } = await installed();
    await writeFile(recordPath(join(prefix, SHARE)), '{not json');
    expect(await writeInstall(prefix, entries, false)).toBe('unchanged');
    await writeFile(image, 'CCCC');
    await writeFile(recordPath(join(prefix, SHARE)), '{not json');
    await expect(writeInstall(prefix, entries, false)).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
  });
});

describe('a partial build keeping the installed image', () => {
  const params = `root_hash=${'c'.repeat(64)},salt=${'d'.repeat(64)},data_blocks=100,data_block_size=4096,hash_block_size=4096`;
  const run = (rootfs: RootfsArtifact[]) => ({
    rootfs,
    kernels: [],
    bootTests: [],
    agent: { source: 'a', sha256: 'b' },
    sourceDateEpoch: undefined,
    qemu: { path: 'q', machineType: 'q35' },
  });
  const text = (entries: InstallEntry[], path: string) => {
    const e = entries.find((x) => x.path === path);
    return e?.kind === 'text' ? e.content : '';
  };

  /** An install of an image built with `imageOptions` (and a kernel), then `--initrd` builds over it. */
  async function keptOver(imageOptions: Record<string, unknown>, artifact: string, verity?: string) {
    const prefix = await mkdtemp(join(tmpdir(), 'osb-kept-'));
    const src = await mkdtemp(join(tmpdir(), 'osb-kept-src-'));
    const full = planBuild({ prefix, image: true, imageOptions }, undefined, 'x86_64');
    const image = {
      ...fakeRootfs('image', 'kata-debian-bookworm.image'),
      inputs: { role: 'image', artifact },
      ...(verity ? { kernelVerityParams: verity } : {}),
    };
    image.path = join(src, image.fileName);
    await writeFile(image.path, image.fileName);
    const kernel = await sourceFile(src, 'vmlinuz-6.1.9-7', 'K');
    const first = await planInstall(full, run([image]));
    const withKernel = [...first.entries, kernel, { kind: 'link' as const, path: `${SHARE}/vmlinuz.container`, target: 'vmlinuz-6.1.9-7' }];
    await writeInstall(prefix, withKernel, false);
    const initrd = { ...fakeRootfs('initrd', 'kata-busybox-bookworm.initrd'), path: join(src, 'kata-busybox-bookworm.initrd') };
    await writeFile(initrd.path, initrd.fileName);
    const plan = planBuild({ prefix, initrd: true }, undefined, 'x86_64');
    const second = await planInstall(plan, run([initrd]));
    return { prefix, plan, run: () => planInstall(plan, run([initrd])), second };
  }

  it('configures the kept erofs, no-DAX, verity image as its manifest.json recorded it, and records it for the next partial build', async () => {
    const k = await keptOver({ fsType: 'erofs', dax: false, verity: true }, 'erofs,no-dax,mbr,verity', params);
    const c = parseConfig(text(k.second.entries, `${DEFAULTS}/configuration-qemu.toml`), 'x');
    expect(c.warnings).toEqual([]);
    expect(c.hypervisor).toMatchObject({
      image: `${k.plan.shareDir}/kata-containers.img`,
      initrd: null,
      rootfsType: 'erofs',
      disableImageNvdimm: true,
      kernelVerityParams: params,
    });
    expect(k.second.notes).toEqual([expect.stringMatching(/^kept from the existing install: .*kata-debian-bookworm\.image/)]);
    const m = JSON.parse(text(k.second.entries, `${SHARE}/manifest.json`));
    expect(m.rootfs.map((r: { file: string }) => r.file)).toEqual(['kata-busybox-bookworm.initrd']);
    expect(m.keptRootfs).toEqual([
      expect.objectContaining({ role: 'image', file: 'kata-debian-bookworm.image', inputs: { role: 'image', artifact: 'erofs,no-dax,mbr,verity' } }),
    ]);

    // Installed, the next partial build finds the image's record among the kept ones: same configuration, same manifest.
    await writeInstall(k.prefix, k.second.entries, true);
    const third = await k.run();
    expect(text(third.entries, `${DEFAULTS}/configuration-qemu.toml`)).toBe(text(k.second.entries, `${DEFAULTS}/configuration-qemu.toml`));
    expect(text(third.entries, `${SHARE}/manifest.json`)).toBe(text(k.second.entries, `${SHARE}/manifest.json`));
  });

  it('a kept default image keeps the default configuration; one manifest.json does not record gets it with a note', async () => {
    const k = await keptOver({}, 'ext4,dax,mbr');
    const toml = text(k.second.entries, `${DEFAULTS}/configuration-qemu.toml`);
    expect(parseConfig(toml, 'x').hypervisor).toMatchObject({ rootfsType: 'ext4', disableImageNvdimm: false, kernelVerityParams: '' });
    expect(k.second.notes).toHaveLength(1);

    const unknown = await keptOver({ fsType: 'erofs' }, '');
    expect(parseConfig(text(unknown.second.entries, `${DEFAULTS}/configuration-qemu.toml`), 'x').hypervisor).toMatchObject({ rootfsType: 'ext4' });
    expect(unknown.second.notes[1]).toBe(
      'manifest.json records no image options for the kept kata-debian-bookworm.image: configuration-qemu.toml boots it as ext4 over nvdimm',
    );
  });
});

describe('recordedImageBoot', () => {
  it("reads the image options from the record's inputs.artifact", () => {
    const record = (artifact: unknown) => ({ inputs: { artifact } }) as unknown as Parameters<typeof recordedImageBoot>[0];
    expect(recordedImageBoot(record('erofs,dax,mbr'))).toEqual({ rootfsType: 'erofs', disableImageNvdimm: false });
    expect(recordedImageBoot(record('size=256,ext4,no-dax,gpt'))).toEqual({ rootfsType: 'ext4', disableImageNvdimm: true });
    expect(recordedImageBoot(record('xfs,dax'))).toBeUndefined();
    expect(recordedImageBoot(record('ext4'))).toBeUndefined();
    expect(recordedImageBoot(record(undefined))).toBeUndefined();
  });
});
