import { DNF_UNKNOWN_PACKAGE, rpmInstallCommands, rpmPackageQuery } from '../common.js';
import type { DistroDefinition } from '../types.js';

/**
 * EulerOS with yum --installroot from Huawei's repository (Kata's
 * euleros/config.sh BASE_URL and package set; x86_64 only there).
 */
export const euleros: DistroDefinition = {
  name: 'euleros',
  displayName: 'EulerOS',
  description: 'EulerOS via yum --installroot',
  versions: [{ id: '2.2', label: 'EulerOS 2.2' }],
  defaultVersion: '2.2',
  arches: ['x86_64'],
  initModes: ['systemd', 'agent-init'],
  bootstrapTool: 'yum',
  packageManager: null,
  packages: { common: ['chrony', 'iptables', 'kmod'], systemd: ['systemd'], agentInit: [] },
  extraPackages: true,
  defaultMirror: () => 'http://developer.huawei.com/ict/site-euleros/euleros/repo/yum',
  baseImage: (version) => `docker.io/euleros:${version}`,
  builderPackages: ['kmod', 'rpm', 'tar'],
  dockerfileTemplate: new URL('./Dockerfile.hbs', import.meta.url),
  nativeTools: ['yum', 'rpm', 'depmod'],
  bootstrap: (input) =>
    rpmInstallCommands('yum', input, input.version, [
      {
        id: 'osbuilder-euleros',
        name: `EulerOS ${input.version} base`,
        baseurl: `${input.mirror}/${input.version}/os/${input.arch}/`,
        gpgkey: 'file:///etc/pki/rpm-gpg/RPM-GPG-KEY-EulerOS',
      },
    ]),
  packageSource: (input) => ({ kind: 'command', command: rpmPackageQuery(input.root) }),
  chrony: { conf: ['/etc/chrony.conf'], service: ['/usr/lib/systemd/system/chronyd.service'] },
  unknownPackagePatterns: DNF_UNKNOWN_PACKAGE,
};
