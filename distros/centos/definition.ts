import { DNF_UNKNOWN_PACKAGE, rpmInstallCommands, rpmPackageQuery, type RpmRepo } from '../common.js';
import type { BootstrapInput, DistroDefinition } from '../types.js';

/** "stream9" -> 9 (Kata's config.sh turns it into the repo name "9-stream"). */
export function centosRelease(version: string): string {
  return version.replace(/^stream/, '');
}

/** Kata's centos/config.sh METALINK; a --mirror replaces it with baseurls. */
const METALINK = 'https://mirrors.centos.org/metalink';

function repos(input: BootstrapInput): RpmRepo[] {
  const rel = centosRelease(input.version);
  const gpgkey = 'file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial';
  return ['BaseOS', 'AppStream'].map((repo) => ({
    id: `osbuilder-centos-${repo.toLowerCase()}`,
    name: `CentOS Stream ${rel} ${repo}`,
    ...(input.mirror === METALINK
      ? { metalink: `${METALINK}?repo=centos-${repo.toLowerCase()}-${rel}-stream&arch=${input.arch}` }
      : { baseurl: `${input.mirror}/${rel}-stream/${repo}/${input.arch}/os/` }),
    gpgkey,
  }));
}

/** CentOS Stream with dnf --installroot; package set from Kata's centos/config.sh. */
export const centos: DistroDefinition = {
  name: 'centos',
  displayName: 'CentOS Stream',
  description: 'CentOS Stream via dnf --installroot',
  versions: [
    { id: 'stream9', aliases: ['9'], label: 'CentOS Stream 9' },
    { id: 'stream10', aliases: ['10'], label: 'CentOS Stream 10' },
  ],
  defaultVersion: 'stream9',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'dnf',
  packageManager: null,
  packages: { common: ['chrony', 'kmod'], systemd: ['systemd'], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => METALINK,
  baseImage: (version) => `quay.io/centos/centos:${version}`,
  builderPackages: ['kmod', 'rpm', 'tar'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  nativeTools: ['dnf', 'rpm', 'depmod'],
  bootstrap: (input) => rpmInstallCommands('dnf', input, centosRelease(input.version), repos(input)),
  packageSource: (input) => ({ kind: 'command', command: rpmPackageQuery(input.root) }),
  chrony: { conf: ['/etc/chrony.conf'], service: ['/usr/lib/systemd/system/chronyd.service'] },
  unknownPackagePatterns: DNF_UNKNOWN_PACKAGE,
};
