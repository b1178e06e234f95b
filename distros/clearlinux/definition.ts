import { SCRATCH } from '../common.js';
import type { DistroDefinition } from '../types.js';

/**
 * Clear Linux with swupd os-install. Clear ships bundles, not packages:
 * os-core carries systemd, kmod and util-linux, so both init modes use it.
 * x86_64 only (Kata's clearlinux/config.sh ARCH_EXCLUDE_LIST).
 */
export const clearlinux: DistroDefinition = {
  name: 'clearlinux',
  displayName: 'Clear Linux OS',
  description: 'Clear Linux via swupd os-install (bundles)',
  versions: [{ id: 'latest', label: 'newest Clear Linux release' }],
  versionPattern: /^\d{4,6}$/,
  defaultVersion: 'latest',
  arches: ['x86_64'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'swupd',
  packageManager: 'swupd',
  packages: { common: ['os-core'], systemd: [], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => 'https://cdn.download.clearlinux.org',
  baseImage: () => 'docker.io/library/clearlinux:latest',
  builderPackages: [],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  nativeTools: ['swupd', 'depmod'],
  bootstrap: (input) => [
    {
      title: 'swupd os-install',
      argv: [
        'swupd',
        'os-install',
        '--path',
        input.root,
        ...(input.version === 'latest' ? [] : ['--version', input.version]),
        '--bundles',
        input.packages.join(','),
        '--url',
        `${input.mirror}/update`,
        '--statedir',
        `${SCRATCH}/swupd`,
        '--no-boot-update',
        '--skip-diskspace-check',
      ],
    },
  ],
  packageSource: () => ({ kind: 'clear-bundles', path: '/usr/share/clear/bundles', osRelease: '/usr/lib/os-release' }),
  chrony: { conf: ['/etc/chrony.conf'], service: ['/usr/lib/systemd/system/chronyd.service'] },
  unknownPackagePatterns: [/Bundle "([^"]+)" is invalid/],
};
