import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { ARCHES, type Arch } from '../../core/arch.js';
import { DISTROS, getDistro, summarize } from '../../distros/index.js';
import type { InitMode } from '../../distros/types.js';
import { planRootfs, renderDockerfile, resolveRootfsOptions, shellRunBodies, dockerInstructions } from '../../rootfs-builder/index.js';
import { busyboxLayout } from '../../distros/busybox/definition.js';
import { depmodStreamArgv } from '../../rootfs-builder/stream.js';

const CTX = { toolVersion: 'test', sourceDateEpoch: 1700000000 };

function plan(distro: string, initMode: InitMode | undefined, extra: Partial<Parameters<typeof resolveRootfsOptions>[0]> = {}, host: Arch = 'x86_64') {
  const r = resolveRootfsOptions({ distro, output: '/out/rootfs', ...(initMode ? { agentInit: initMode === 'agent-init' } : {}), ...extra }, host);
  return planRootfs(r, CTX);
}

/** Kata's platform/distro matrix (ARCH_EXCLUDE_LIST per config.sh), plus Debian's arches for busybox. */
const MATRIX: Record<string, Arch[]> = {
  alpine: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  busybox: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  centos: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  clearlinux: ['x86_64'],
  debian: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  euleros: ['x86_64'],
  fedora: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  ubuntu: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
};

describe('distro definitions: rendered Dockerfiles and plans (snapshots, reviewed)', () => {
  for (const d of DISTROS) {
    for (const mode of d.initModes) {
      it(`${d.name} ${mode}`, async () => {
        const p = plan(d.name, mode);
        await expect(p.builder!.dockerfile).toMatchFileSnapshot(`./__snapshots__/rootfs/${d.name}.Dockerfile`);
        const { builder, ...rest } = p;
        await expect(`${JSON.stringify({ ...rest, builder: { ...builder, dockerfile: `<${d.name}.Dockerfile>` } }, null, 2)}\n`).toMatchFileSnapshot(
          `./__snapshots__/rootfs/${d.name}-${mode}.plan.json`,
        );
      });
    }
  }

  it('busybox: one link per applet, never an init applet', () => {
    const ops = busyboxLayout('bin/busybox\nbin/sh\nsbin/init\nlinuxrc\nusr/bin/[\nusr/bin/[[\nsbin/depmod\n../etc/evil\n');
    const links = ops.flatMap((o) => (o.op === 'symlink' ? [o.path] : []));
    expect(links).toEqual(['/bin/sh', '/sbin/depmod', '/usr/bin/[', '/usr/bin/[[']);
    expect(ops.find((o) => 'path' in o && o.path === '/tmp')).toEqual({ op: 'mkdir', path: '/tmp', mode: 0o1777 });
  });

  it('extra packages and the mirror reach the bootstrap command', () => {
    const p = plan('debian', 'agent-init', { extraPackages: ['strace'], mirror: 'http://mirror.example/debian' });
    expect(p.bootstrap[0]!.argv).toContain('--include=chrony,iptables,kmod,strace');
    expect(p.bootstrap[0]!.argv.slice(-3)).toEqual(['bookworm', '/rootfs', 'http://mirror.example/debian']);
    expect(p.builder!.buildArgs).toEqual({ MIRROR: 'http://mirror.example/debian' });
    const f = plan('fedora', 'systemd', { mirror: 'https://dl.example/fedora' });
    expect(f.bootstrap[0]!.input).toContain('baseurl=https://dl.example/fedora/releases/40/Everything/x86_64/os/');
  });

  it('native plans run the same commands against the host path', () => {
    const r = resolveRootfsOptions({ distro: 'debian', output: '/out/rootfs', engine: 'native' }, 'x86_64');
    const p = planRootfs(r, { toolVersion: 't', nativeRoot: '/out/.rootfs.tmp-1' });
    expect(p.builder).toBeUndefined();
    expect(p.container).toBeUndefined();
    expect(p.bootstrap[0]!.argv).toContain('/out/.rootfs.tmp-1');
  });

  it('kernel modules: copied to /lib/modules/<release>, depmod run for that release against the rootfs (a remote engine: over the modules streamed in)', () => {
    const p = plan('debian', 'agent-init', { kernelModules: '/mods/lib/modules/6.1.62-kata' });
    expect(p.kernelModules).toEqual({
      from: '/mods/lib/modules/6.1.62-kata',
      kver: '6.1.62-kata',
      dest: '/lib/modules/6.1.62-kata',
      depmod: { title: 'depmod 6.1.62-kata', argv: ['depmod', '-b', '/rootfs', '6.1.62-kata'] },
    });
    const remote = planRootfs(resolveRootfsOptions({ distro: 'debian', output: '/out/rootfs', kernelModules: '/mods/lib/modules/6.1.62-kata' }, 'x86_64'), {
      ...CTX,
      remoteEngine: true,
    });
    expect(remote.kernelModules!.depmod.argv).toEqual(depmodStreamArgv('6.1.62-kata'));
    const r = resolveRootfsOptions({ distro: 'busybox', output: '/out/rootfs', engine: 'native', kernelModules: '/mods/6.6.1' }, 'x86_64');
    expect(planRootfs(r, { toolVersion: 't', nativeRoot: '/out/.rootfs.tmp-1' }).kernelModules!.depmod.argv).toEqual([
      'depmod',
      '-b',
      '/out/.rootfs.tmp-1',
      '6.6.1',
    ]);
    expect(plan('debian', 'systemd').kernelModules).toBeUndefined();
  });

  it('a remote engine is decided once, in the plan: set for container engines the context calls remote, absent otherwise (cache keys hash the plan)', () => {
    const opts = { distro: 'debian', output: '/out/rootfs' };
    expect(planRootfs(resolveRootfsOptions(opts, 'x86_64'), { ...CTX, remoteEngine: true }).remoteEngine).toBe(true);
    expect(planRootfs(resolveRootfsOptions(opts, 'x86_64'), { ...CTX, remoteEngine: false })).not.toHaveProperty('remoteEngine');
    expect(planRootfs(resolveRootfsOptions(opts, 'x86_64'), CTX)).not.toHaveProperty('remoteEngine');
    const native = resolveRootfsOptions({ ...opts, engine: 'native' }, 'x86_64');
    expect(planRootfs(native, { ...CTX, remoteEngine: true, nativeRoot: '/out/.rootfs.tmp-1' })).not.toHaveProperty('remoteEngine');
  });

  it('cross builds carry the OCI platform', () => {
    const p = plan('debian', 'systemd', { arch: 'aarch64' });
    expect(p.builder!.platform).toBe('linux/arm64');
    expect(p.container!.platform).toBe('linux/arm64');
    expect(p.bootstrap[0]!.argv).toContain('--arch=arm64');
  });

  it('busybox for another arch: a host-arch builder fetches busybox-static:<arch>, no emulation, no platform', () => {
    const p = plan('busybox', 'agent-init', { arch: 'aarch64', bootstrapBase: true });
    expect(p.builder!.platform).toBeUndefined();
    expect(p.container!.platform).toBeUndefined();
    expect(p.base).toMatchObject({ ref: 'osbuilder/debian-base:bookworm-x86_64' });
    expect(p.base!.bootstrapArgv).toContain('--arch=amd64');
    expect(p.builder!.dockerfile).toContain('apt-get download busybox-static:arm64');
    expect(p.bootstrap.map((c) => c.argv)).toEqual([
      ['install', '-D', '-m', '0755', '/opt/busybox-static-arm64/bin/busybox', '/rootfs/bin/busybox'],
      ['/bin/busybox', '--list-full'],
      ['dpkg-deb', '--show', '--showformat=${Version}', '/opt/busybox-static-arm64.deb'],
    ]);
    expect(p.packageSource).toMatchObject({
      kind: 'command',
      command: { argv: ['dpkg-deb', '--show', '--showformat=${Package}=${Version}\\n', '/opt/busybox-static-arm64.deb'] },
    });
    expect(() => resolveRootfsOptions({ distro: 'busybox', arch: 'aarch64', output: '/o', engine: 'native' }, 'x86_64')).toThrow(
      /busybox for aarch64 on this x86_64 host needs a container engine/,
    );
  });

  it('plans are deterministic', () => {
    expect(JSON.stringify(plan('debian', 'systemd'))).toBe(JSON.stringify(plan('debian', 'systemd')));
  });
});

describe('arch matrix', () => {
  for (const d of DISTROS) {
    for (const arch of ARCHES) {
      const ok = MATRIX[d.name]!.includes(arch);
      it(`${d.name} ${arch}: ${ok ? 'planned' : 'refused'}`, () => {
        if (ok) expect(plan(d.name, undefined, { arch }).arch).toBe(arch);
        else expect(() => plan(d.name, undefined, { arch })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_ARCH' }));
      });
    }
  }

  it('osbuilder distros reports the same', () => {
    for (const d of DISTROS) expect(summarize(d).arches).toEqual(MATRIX[d.name]);
    expect(summarize(getDistro('busybox'))).toMatchObject({ systemd: false, bootstrapTool: 'busybox', packageManager: null });
    expect(summarize(getDistro('debian'))).toMatchObject({
      systemd: true,
      defaultVersion: 'bookworm',
      localBase: true,
      booted: [
        { arch: 'x86_64', formats: ['image', 'initrd'] },
        { arch: 'aarch64', formats: ['image'] },
      ],
    });
    expect(summarize(getDistro('fedora'))).toMatchObject({ booted: [], built: [] });
    expect(summarize(getDistro('busybox'))).toMatchObject({
      booted: [
        { arch: 'x86_64', formats: ['initrd'] },
        { arch: 'aarch64', formats: ['image', 'initrd'] },
      ],
      built: [],
    });
  });
});

describe('rendered Dockerfiles are well-formed', () => {
  const KNOWN = new Set(['FROM', 'ARG', 'ENV', 'RUN', 'LABEL', 'COPY', 'WORKDIR']);
  for (const d of DISTROS) {
    it(`${d.name}: known instructions, one FROM naming the base, RUN bodies pass sh -n`, async () => {
      const p = plan(d.name, undefined);
      const text = p.builder!.dockerfile;
      const ins = dockerInstructions(text);
      expect(ins.filter((i) => !KNOWN.has(i.keyword))).toEqual([]);
      // Debian-based builders start from the locally made base, the others from their registry image.
      expect(p.base!.ref).toBe(d.localBase ? 'osbuilder/debian-base:bookworm-x86_64' : d.baseImage(d.defaultVersion, 'x86_64'));
      expect(ins.filter((i) => i.keyword === 'FROM').map((i) => i.args)).toEqual([p.base!.ref]);
      for (const { line, script } of shellRunBodies(text)) {
        const r = await execa('sh', ['-n', '-c', script], { reject: false });
        expect(r.exitCode, `line ${line}: ${r.stderr}`).toBe(0);
      }
    });
  }

  it('the shell check catches a broken RUN body (so the checks above can fail)', async () => {
    const d = getDistro('debian');
    const broken = readFileSync(d.dockerfileTemplate, 'utf8').replace('fi\n', 'fi fi\n');
    const text = renderDockerfile(d, 'bookworm', 'x86_64', 'debian:bookworm', broken);
    const results = await Promise.all(shellRunBodies(text).map((b) => execa('sh', ['-n', '-c', b.script], { reject: false })));
    expect(results.some((r) => r.exitCode !== 0)).toBe(true);
  });

  it('joins continuation lines and skips comments', () => {
    expect(dockerInstructions('# c\nFROM a\nRUN x \\\n  # inner\n  && y\n\nLABEL k=v\n')).toEqual([
      { line: 2, keyword: 'FROM', args: 'a' },
      { line: 3, keyword: 'RUN', args: 'x   && y' },
      { line: 7, keyword: 'LABEL', args: 'k=v' },
    ]);
  });
});
