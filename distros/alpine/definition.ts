import { writeFileCommand } from '../common.js';
import type { BootstrapInput, DistroDefinition } from '../types.js';

/** Repository branch for a version: 3.20 -> v3.20; edge and latest-stable as they are. */
export function alpineBranch(version: string): string {
  return /^\d+\.\d+$/.test(version) ? `v${version}` : version;
}

function repositories(input: BootstrapInput): string {
  const branch = alpineBranch(input.version);
  return `${input.mirror}/${branch}/main\n${input.mirror}/${branch}/community\n`;
}

/**
 * Alpine with apk --root --initdb (Kata's alpine/rootfs_lib.sh copies the
 * builder's own tree instead). No systemd on Alpine: the agent is init, as
 * Kata's alpine/config.sh says (INIT_PROCESS=kata-agent).
 */
export const alpine: DistroDefinition = {
  name: 'alpine',
  displayName: 'Alpine Linux',
  description: 'Alpine via apk --root --initdb; agent as init',
  versions: [
    { id: '3.21', label: 'Alpine 3.21' },
    { id: '3.20', label: 'Alpine 3.20' },
    { id: '3.19', label: 'Alpine 3.19' },
    { id: 'latest-stable', label: 'Alpine latest-stable' },
    { id: 'edge', label: 'Alpine edge' },
  ],
  defaultVersion: '3.20',
  arches: ['x86_64', 'aarch64', 'ppc64le', 's390x'],
  initModes: ['agent-init'],
  bootstrapTool: 'apk',
  packageManager: 'apk',
  packages: { common: ['alpine-base', 'iptables', 'kmod'], systemd: [], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => 'https://dl-cdn.alpinelinux.org/alpine',
  baseImage: (version) => `docker.io/library/alpine:${version === 'latest-stable' ? 'latest' : version}`,
  builderPackages: ['apk-tools', 'ca-certificates', 'kmod', 'tar'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  dockerfileVars: (version) => ({ branch: alpineBranch(version) }),
  nativeTools: ['apk', 'depmod'],
  bootstrap: (input) => [
    { title: 'prepare /etc/apk', argv: ['mkdir', '-p', `${input.root}/etc/apk`] },
    { title: 'trust the builder apk keys', argv: ['cp', '-a', '/etc/apk/keys', `${input.root}/etc/apk/keys`] },
    writeFileCommand('write repositories', `${input.root}/etc/apk/repositories`, repositories(input)),
    {
      title: 'apk add --root',
      argv: [
        'apk',
        'add',
        '--root',
        input.root,
        '--initdb',
        '--no-cache',
        '--arch',
        input.arch,
        '--repositories-file',
        `${input.root}/etc/apk/repositories`,
        ...input.packages,
      ],
    },
  ],
  packageSource: () => ({ kind: 'apk-installed', path: '/lib/apk/db/installed' }),
  chrony: { conf: ['/etc/chrony/chrony.conf'], service: [] },
  unknownPackagePatterns: [/\s(\S+) \(no such package\)/],
};
