import { APT_UNKNOWN_PACKAGE } from '../common.js';
import { ARCH_FACTS } from '../../core/arch.js';
import type { BootstrapInput, Command, DistroDefinition, FileOp } from '../types.js';

const MIRROR = 'http://deb.debian.org/debian';

/** Applets that would take the agent's place as init. */
const SKIPPED_APPLETS = new Set(['sbin/init', 'linuxrc', 'init']);

/**
 * The smallest guest: Debian's busybox-static (taken from the builder, so
 * no package manager in the guest), its applets as symlinks, and the agent
 * as init. Used for initrds.
 */
export const busybox: DistroDefinition = {
  name: 'busybox',
  displayName: 'BusyBox',
  description: "Debian's busybox-static with the agent as init, no package manager (built for real in the tests)",
  versions: [
    { id: 'bookworm', aliases: ['12'], label: 'busybox-static from Debian 12' },
    { id: 'trixie', aliases: ['13'], label: 'busybox-static from Debian 13' },
  ],
  defaultVersion: 'bookworm',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['agent-init'],
  bootstrapTool: 'busybox',
  packageManager: null,
  packages: { common: [], systemd: [], agentInit: [] },
  extraPackages: false,
  defaultMirror: () => MIRROR,
  baseImage: (version) => `docker.io/library/debian:${version}`,
  localBase: (version) => ({ suite: version, mirror: MIRROR }),
  builderPackages: ['busybox-static', 'kmod'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  dockerfileVars: (version, arch) => ({ suite: version, debArch: ARCH_FACTS[arch].debArch }),
  nativeTools: ['busybox', 'depmod', 'dpkg-query'],
  crossWithoutEmulation: true,
  bootstrap: (input) => [
    { title: 'install busybox', argv: ['install', '-D', '-m', '0755', busyboxBinary(input), `${input.root}/bin/busybox`] },
    // The applet list is the builder's busybox's: the same Debian package, built the same way for every arch.
    { title: 'list applets', argv: ['/bin/busybox', '--list-full'], capture: 'applets', builderOnly: true },
    { ...packageQuery(input, '${Version}'), title: 'busybox version', capture: 'version' },
  ],
  postBootstrap: (_input, captured) => busyboxLayout(captured.applets ?? ''),
  packageSource: (input) => ({ kind: 'command', command: { ...packageQuery(input, '${Package}=${Version}\\n'), title: 'list packages', capture: 'packages' } }),
  unknownPackagePatterns: APT_UNKNOWN_PACKAGE,
  osRelease: (version, captured) => {
    const v = (captured.version ?? '').trim();
    const upstream = v.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
    return [
      'NAME="BusyBox"',
      'ID=busybox',
      `VERSION_ID="${upstream}"`,
      `VERSION="${upstream} (Debian ${version} busybox-static ${v})"`,
      `PRETTY_NAME="BusyBox ${upstream} (osbuilder guest)"`,
      '',
    ].join('\n');
  },
};

/** Where the builder keeps another arch's busybox-static (Dockerfile.hbs fetches it). */
export function foreignDir(input: BootstrapInput): string {
  return `/opt/busybox-static-${ARCH_FACTS[input.arch].debArch}`;
}

function busyboxBinary(input: BootstrapInput): string {
  return input.arch === input.builderArch ? '/bin/busybox' : `${foreignDir(input)}/bin/busybox`;
}

/** dpkg-query on the installed package, or dpkg-deb on the fetched one. */
function packageQuery(input: BootstrapInput, format: string): Command {
  const argv =
    input.arch === input.builderArch
      ? ['dpkg-query', '-W', '-f', format, 'busybox-static']
      : ['dpkg-deb', '--show', `--showformat=${format}`, `${foreignDir(input)}.deb`];
  return { title: '', argv, builderOnly: true };
}

/** Directory skeleton plus one symlink per applet (`busybox --list-full`), init left to the agent. */
export function busyboxLayout(appletList: string): FileOp[] {
  const ops: FileOp[] = [];
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run', 'etc', 'root', 'var', 'lib', 'mnt']) {
    ops.push({ op: 'mkdir', path: `/${d}`, mode: d === 'root' ? 0o700 : 0o755 });
  }
  ops.push({ op: 'mkdir', path: '/tmp', mode: 0o1777 });
  const applets = [
    ...new Set(
      appletList
        .split('\n')
        .map((l) => l.trim().replace(/^\/+/, ''))
        .filter(Boolean),
    ),
  ].sort();
  for (const applet of applets) {
    if (applet === 'bin/busybox' || SKIPPED_APPLETS.has(applet)) continue;
    if (!/^(usr\/)?s?bin\/[\w.[\]-]+$/.test(applet)) continue;
    ops.push({ op: 'symlink', path: `/${applet}`, target: '/bin/busybox' });
  }
  ops.push(
    { op: 'write', path: '/etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n', mode: 0o644 },
    { op: 'write', path: '/etc/group', content: 'root:x:0:\n', mode: 0o644 },
  );
  return ops;
}
