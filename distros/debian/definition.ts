import { APT_UNKNOWN_PACKAGE, mmdebstrapCommand, mmdebstrapPackageCacheArgs } from '../common.js';
import type { DistroDefinition } from '../types.js';

const MIRROR = 'http://deb.debian.org/debian';

/**
 * Debian, bootstrapped with mmdebstrap (minbase). Package set from Kata's
 * debian/config.sh (which reuses ubuntu's): systemd iptables init kmod, plus
 * chrony (Kata's EXTRA_PKGS); with --agent-init systemd and init are left out.
 */
export const debian: DistroDefinition = {
  name: 'debian',
  displayName: 'Debian',
  description: 'Debian minbase via mmdebstrap (built for real in the tests)',
  versions: [
    { id: 'bookworm', aliases: ['12'], label: 'Debian 12' },
    { id: 'trixie', aliases: ['13'], label: 'Debian 13' },
    { id: 'bullseye', aliases: ['11'], label: 'Debian 11' },
  ],
  defaultVersion: 'bookworm',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'mmdebstrap',
  packageManager: 'apt',
  packages: { common: ['chrony', 'iptables', 'kmod'], systemd: ['init', 'systemd'], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => MIRROR,
  baseImage: (version) => `docker.io/library/debian:${version}`,
  localBase: (version) => ({ suite: version, mirror: MIRROR }),
  builderPackages: ['ca-certificates', 'kmod', 'mmdebstrap'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  dockerfileVars: (version) => ({ suite: version }),
  nativeTools: ['mmdebstrap', 'depmod'],
  bootstrap: (input) => [mmdebstrapCommand(input, input.version, ['main'])],
  packageSource: () => ({ kind: 'dpkg-status', path: '/var/lib/dpkg/status' }),
  chrony: { conf: ['/etc/chrony/chrony.conf'], service: ['/usr/lib/systemd/system/chrony.service'] },
  unknownPackagePatterns: APT_UNKNOWN_PACKAGE,
  packageCache: (input) => ({ suite: input.version, tool: 'mmdebstrap', args: mmdebstrapPackageCacheArgs() }),
};
