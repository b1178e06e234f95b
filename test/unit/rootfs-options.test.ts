import { describe, expect, it } from 'vitest';
import { resolveRootfsOptions, rootfsOptionsFromCli } from '../../rootfs-builder/index.js';
import { OsbuilderError } from '../../core/errors.js';
import { BuildCache } from '../../core/cache.js';
import { planBuild } from '../../pipeline/plan.js';
import { rootfsOptionsFor, stageContext } from '../../pipeline/stages.js';

describe('rootfsOptionsFromCli: Kata environment variables as defaults', () => {
  it('maps every rootfs.sh variable', () => {
    const opts = rootfsOptionsFromCli(
      { distro: 'debian' },
      {
        ROOTFS_DIR: '/work/rootfs',
        AGENT_INIT: 'yes',
        AGENT_SOURCE_BIN: '/opt/kata-agent',
        EXTRA_PKGS: 'strace  iproute2',
        KERNEL_MODULES_DIR: '/lib/modules/6.1.0',
        OS_VERSION: '12',
        ARCH: 'x86_64',
        USE_PODMAN: 'true',
        DEBUG: '1',
      },
    );
    expect(opts).toEqual({
      distro: 'debian',
      output: '/work/rootfs',
      engine: 'podman',
      osVersion: '12',
      arch: 'x86_64',
      agent: '/opt/kata-agent',
      agentInit: true,
      extraPackages: ['strace', 'iproute2'],
      kernelModules: '/lib/modules/6.1.0',
      debug: true,
    });
  });

  it('flags win over the environment', () => {
    const opts = rootfsOptionsFromCli(
      { distro: 'debian', output: '/o', agentInit: false, engine: 'native', extraPkgs: 'vim', osVersion: 'trixie', agent: '/a' },
      { ROOTFS_DIR: '/env', AGENT_INIT: 'yes', USE_DOCKER: 'true', EXTRA_PKGS: 'strace', OS_VERSION: 'bookworm', AGENT_SOURCE_BIN: '/b' },
    );
    expect(opts).toMatchObject({ output: '/o', agentInit: false, engine: 'native', extraPackages: ['vim'], osVersion: 'trixie', agent: '/a' });
  });

  it('USE_DOCKER wins over USE_PODMAN, as in rootfs.sh; docker is the default engine', () => {
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o' }, { USE_DOCKER: '1', USE_PODMAN: '1' }).engine).toBe('docker');
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o' }, {}).engine).toBe('docker');
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o' }, { USE_DOCKER: 'false', USE_PODMAN: 'yes' }).engine).toBe('podman');
  });

  it('leaves unset what neither flag nor variable sets', () => {
    expect(rootfsOptionsFromCli({ distro: 'busybox', output: '/o' }, { AGENT_INIT: '', EXTRA_PKGS: '' })).toEqual({
      distro: 'busybox',
      output: '/o',
      engine: 'docker',
    });
  });

  it('rejects what rootfs.sh rejects', () => {
    expect(() => rootfsOptionsFromCli({ distro: 'debian', output: '/o' }, { AGENT_INIT: 'maybe' })).toThrow(
      /AGENT_INIT\(maybe\) is invalid \(must be yes or no\)/,
    );
    expect(() => rootfsOptionsFromCli({ distro: 'debian' }, {})).toThrow(OsbuilderError);
    expect(() => rootfsOptionsFromCli({ distro: 'debian', output: '/o', engine: 'lxc' }, {})).toThrow(/unknown engine "lxc"/);
  });
});

describe('resolveRootfsOptions', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as OsbuilderError).code;
    }
    return 'no error';
  };

  it('defaults: version, host arch, the distro first init mode, its package set', () => {
    const r = resolveRootfsOptions({ distro: 'debian', output: 'out' }, 'x86_64');
    expect(r.version).toBe('bookworm');
    expect(r.arch).toBe('x86_64');
    expect(r.initMode).toBe('systemd');
    expect(r.packages).toEqual(['chrony', 'init', 'iptables', 'kmod', 'systemd']);
    expect(r.base).toMatchObject({ kind: 'bootstrap', ref: 'osbuilder/debian-base:bookworm-x86_64' });
    expect(r.output).toMatch(/^\/.*\/out$/);
  });

  it('agent-init drops systemd; extras come after the distro set, deduplicated', () => {
    const r = resolveRootfsOptions({ distro: 'debian', output: '/o', agentInit: true, extraPackages: ['strace', 'kmod'] }, 'x86_64');
    expect(r.initMode).toBe('agent-init');
    expect(r.packages).toEqual(['chrony', 'iptables', 'kmod', 'strace']);
  });

  it('accepts version aliases and arch aliases', () => {
    const r = resolveRootfsOptions({ distro: 'debian', output: '/o', osVersion: '13', arch: 'arm64' }, 'x86_64');
    expect(r.version).toBe('trixie');
    expect(r.arch).toBe('aarch64');
    expect(resolveRootfsOptions({ distro: 'clearlinux', output: '/o', osVersion: '41830' }, 'x86_64').version).toBe('41830');
  });

  it('names the valid choices when refusing', () => {
    expect(() => resolveRootfsOptions({ distro: 'gentoo', output: '/o' }, 'x86_64')).toThrow(
      /valid distros: alpine, busybox, centos, clearlinux, debian, euleros, fedora, ubuntu/,
    );
    expect(() => resolveRootfsOptions({ distro: 'debian', output: '/o', osVersion: 'sid' }, 'x86_64')).toThrow(
      /versions: bookworm \(12\), trixie \(13\), bullseye \(11\)/,
    );
    expect(() => resolveRootfsOptions({ distro: 'clearlinux', output: '/o', arch: 'aarch64' }, 'x86_64')).toThrow(
      /clearlinux does not support aarch64; supported: x86_64/,
    );
  });

  it('error codes for bad input', () => {
    expect(code(() => resolveRootfsOptions({ distro: 'gentoo', output: '/o' }, 'x86_64'))).toBe('UNKNOWN_DISTRO');
    expect(code(() => resolveRootfsOptions({ distro: 'euleros', output: '/o', arch: 's390x' }, 'x86_64'))).toBe('UNSUPPORTED_ARCH');
    expect(code(() => resolveRootfsOptions({ distro: 'debian', output: '/o', arch: 'mips' }, 'x86_64'))).toBe('UNSUPPORTED_ARCH');
    expect(code(() => resolveRootfsOptions({ distro: 'busybox', output: '/o', agentInit: false }, 'x86_64'))).toBe('UNSUPPORTED');
    expect(code(() => resolveRootfsOptions({ distro: 'alpine', output: '/o', agentInit: false }, 'x86_64'))).toBe('UNSUPPORTED');
    expect(code(() => resolveRootfsOptions({ distro: 'busybox', output: '/o', extraPackages: ['vim'] }, 'x86_64'))).toBe('UNSUPPORTED');
    expect(code(() => resolveRootfsOptions({ distro: 'debian', output: '/o', extraPackages: ['--allow-unauthenticated'] }, 'x86_64'))).toBe('INPUT_INVALID');
    expect(code(() => resolveRootfsOptions({ distro: 'debian', output: '/o', mirror: 'deb.debian.org' }, 'x86_64'))).toBe('INPUT_INVALID');
    expect(code(() => resolveRootfsOptions({ distro: 'debian', output: '/o', baseImage: 'x', bootstrapBase: true }, 'x86_64'))).toBe('USAGE');
    expect(code(() => resolveRootfsOptions({ distro: 'fedora', output: '/o', bootstrapBase: true }, 'x86_64'))).toBe('UNSUPPORTED');
    expect(code(() => resolveRootfsOptions({ distro: 'debian', output: '/o', engine: 'native', bootstrapBase: true }, 'x86_64'))).toBe('USAGE');
  });

  it('--bootstrap-base picks a local tag; --base-image is used as given; --mirror reaches the base too', () => {
    expect(resolveRootfsOptions({ distro: 'busybox', output: '/o', bootstrapBase: true }, 'x86_64').base).toEqual({
      kind: 'bootstrap',
      ref: 'osbuilder/debian-base:bookworm-x86_64',
      suite: 'bookworm',
      arch: 'x86_64',
      mirror: 'http://deb.debian.org/debian',
      include: ['busybox-static', 'ca-certificates', 'kmod', 'mmdebstrap'],
    });
    expect(resolveRootfsOptions({ distro: 'debian', output: '/o', bootstrapBase: true, mirror: 'http://mirror.example/debian/' }, 'x86_64').base).toMatchObject(
      {
        mirror: 'http://mirror.example/debian',
      },
    );
    expect(resolveRootfsOptions({ distro: 'fedora', output: '/o', baseImage: 'localhost/fedora:40' }, 'x86_64').base).toEqual({
      kind: 'given',
      ref: 'localhost/fedora:40',
    });
  });
});

describe('the builder base: one rule for `osbuilder rootfs` and `osbuilder build`', () => {
  const viaRootfs = (distro: string, args: { baseImage?: string; bootstrapBase?: boolean } = {}) =>
    resolveRootfsOptions(rootfsOptionsFromCli({ distro, output: '/o', ...args }, {}), 'x86_64').base;
  const viaBuild = (distro: string, baseImage?: string) => {
    const plan = planBuild({ distro, initrd: true, prefix: '/p' }, undefined, 'x86_64');
    const ctx = stageContext(plan, baseImage ? { baseImage } : {}, {
      cache: new BuildCache('/nonexistent'),
      workDir: '/w',
      agent: { path: '/a', sha256: '', source: 'test' },
    });
    return resolveRootfsOptions(rootfsOptionsFor(ctx, plan.rootfs[0]!, '/o'), 'x86_64').base;
  };

  it('Debian-based distros: made locally by default, by both commands; --base-image overrides; --no-bootstrap-base pulls', () => {
    for (const d of ['debian', 'busybox']) {
      const local = viaRootfs(d);
      expect(local).toEqual({
        kind: 'bootstrap',
        ref: 'osbuilder/debian-base:bookworm-x86_64',
        suite: 'bookworm',
        arch: 'x86_64',
        mirror: 'http://deb.debian.org/debian',
        include: ['busybox-static', 'ca-certificates', 'kmod', 'mmdebstrap'],
      });
      expect(viaBuild(d)).toEqual(local);
      expect(viaRootfs(d, { baseImage: 'localhost/b:1' })).toEqual({ kind: 'given', ref: 'localhost/b:1' });
      expect(viaBuild(d, 'localhost/b:1')).toEqual({ kind: 'given', ref: 'localhost/b:1' });
    }
    expect(viaRootfs('debian', { bootstrapBase: false })).toEqual({ kind: 'registry', ref: 'docker.io/library/debian:bookworm' });
    expect(rootfsOptionsFromCli({ distro: 'debian', output: '/o', bootstrapBase: false }, {}).bootstrapBase).toBe(false);
  });

  it('other distros pull their registry image, from both commands; native builds have no base', () => {
    expect(viaRootfs('alpine')).toEqual({ kind: 'registry', ref: expect.stringMatching(/alpine/) });
    expect(viaBuild('alpine')).toEqual(viaRootfs('alpine'));
    expect(resolveRootfsOptions({ distro: 'debian', output: '/o', engine: 'native' }, 'x86_64').base).toBeUndefined();
  });
});
