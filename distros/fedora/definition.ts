import { DNF_UNKNOWN_PACKAGE, rpmInstallCommands, rpmPackageQuery, type RpmRepo } from '../common.js';
import type { BootstrapInput, DistroDefinition } from '../types.js';

/** Kata's fedora/config.sh MIRROR_LIST; a --mirror replaces it with a baseurl. */
const METALINK = 'https://mirrors.fedoraproject.org/metalink';

function repos(input: BootstrapInput): RpmRepo[] {
  const gpgkey = `file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-${input.version}-primary`;
  if (input.mirror === METALINK) {
    return [{ id: 'osbuilder-fedora', name: `Fedora ${input.version}`, metalink: `${METALINK}?repo=fedora-${input.version}&arch=${input.arch}`, gpgkey }];
  }
  return [
    { id: 'osbuilder-fedora', name: `Fedora ${input.version}`, baseurl: `${input.mirror}/releases/${input.version}/Everything/${input.arch}/os/`, gpgkey },
  ];
}

/** Fedora with dnf --installroot; package set from Kata's fedora/config.sh. */
export const fedora: DistroDefinition = {
  name: 'fedora',
  displayName: 'Fedora',
  description: 'Fedora via dnf --installroot',
  versions: [
    { id: '41', label: 'Fedora 41' },
    { id: '40', label: 'Fedora 40' },
    { id: '39', label: 'Fedora 39' },
  ],
  defaultVersion: '40',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'dnf',
  packageManager: null,
  packages: { common: ['chrony', 'iptables', 'kmod'], systemd: ['systemd'], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => METALINK,
  baseImage: (version) => `registry.fedoraproject.org/fedora:${version}`,
  builderPackages: ['kmod', 'rpm', 'tar'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  nativeTools: ['dnf', 'rpm', 'depmod'],
  bootstrap: (input) => rpmInstallCommands('dnf', input, input.version, repos(input)),
  packageSource: (input) => ({ kind: 'command', command: rpmPackageQuery(input.root) }),
  chrony: { conf: ['/etc/chrony.conf'], service: ['/usr/lib/systemd/system/chronyd.service'] },
  unknownPackagePatterns: DNF_UNKNOWN_PACKAGE,
};
