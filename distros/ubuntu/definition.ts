import { APT_UNKNOWN_PACKAGE, mmdebstrapCommand, mmdebstrapPackageCacheArgs } from '../common.js';
import type { Arch } from '../../core/arch.js';
import type { DistroDefinition } from '../types.js';

/** amd64 lives on the main archive, the other arches on ports. */
function mirror(arch: Arch): string {
  return arch === 'x86_64' ? 'http://archive.ubuntu.com/ubuntu' : 'http://ports.ubuntu.com/ubuntu-ports';
}

/**
 * Ubuntu, bootstrapped like Debian (Kata's ubuntu/rootfs_lib.sh runs
 * debootstrap --variant=minbase; we use mmdebstrap, which needs no mount
 * capability). Package set from Kata's ubuntu/config.sh.
 */
export const ubuntu: DistroDefinition = {
  name: 'ubuntu',
  displayName: 'Ubuntu',
  description: 'Ubuntu minbase via mmdebstrap',
  versions: [
    { id: 'noble', aliases: ['24.04'], label: 'Ubuntu 24.04 LTS' },
    { id: 'jammy', aliases: ['22.04'], label: 'Ubuntu 22.04 LTS' },
    { id: 'focal', aliases: ['20.04'], label: 'Ubuntu 20.04 LTS' },
  ],
  defaultVersion: 'jammy',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'mmdebstrap',
  packageManager: 'apt',
  packages: { common: ['chrony', 'iptables', 'kmod'], systemd: ['init', 'systemd'], agentInit: [] },
  extraPackages: true,
  defaultMirror: mirror,
  baseImage: (version) => `docker.io/library/ubuntu:${version}`,
  builderPackages: ['ca-certificates', 'kmod', 'mmdebstrap', 'ubuntu-keyring'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  dockerfileVars: (version) => ({ suite: version }),
  nativeTools: ['mmdebstrap', 'depmod'],
  bootstrap: (input) => [mmdebstrapCommand(input, input.version, ['main', 'universe'])],
  packageSource: () => ({ kind: 'dpkg-status', path: '/var/lib/dpkg/status' }),
  chrony: { conf: ['/etc/chrony/chrony.conf'], service: ['/usr/lib/systemd/system/chrony.service'] },
  unknownPackagePatterns: APT_UNKNOWN_PACKAGE,
  packageCache: (input) => ({ suite: input.version, tool: 'mmdebstrap', args: mmdebstrapPackageCacheArgs() }),
};
