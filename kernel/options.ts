/** The kernel stage's options (`osbuilder kernel` and `osbuilder build`), one name each. */
import type { OptionSpec, OptionValues } from '../core/options.js';

export const CONFIDENTIAL_GUESTS = ['tdx', 'sev', 'snp'] as const;

/** The flags `osbuilder kernel` took before the table, kept as aliases so no user breaks. */
export const KERNEL_OPTIONS = [
  {
    key: 'kernelVersion',
    flag: 'kernel-version',
    alias: 'v',
    kind: 'string',
    output: true,
    keyedBy: 'version',
    describe:
      "Kernel version, MAJOR.MINOR[.PATCH] (kernel: linux-<v>.tar.xz from kernel.org unless --kernel-source; build: default Debian's linux-source when installed, else a kernel.org LTS)",
  },
  {
    key: 'kernelSource',
    flag: 'kernel-source',
    alias: 'source',
    kind: 'string',
    output: true,
    keyedBy: "source (the tarball's sha256)",
    describe: 'Kernel tarball (.tar.xz/.tar.gz), local path or URL',
  },
  {
    key: 'kernelSha256',
    flag: 'kernel-sha256',
    alias: 'sha256',
    kind: 'string',
    output: true,
    keyedBy: "source (the tarball's sha256, which it checks)",
    describe: 'Expected sha256 of the kernel tarball (kernel.org: read from its sha256sums.asc)',
  },
  {
    key: 'arch',
    flag: 'arch',
    alias: 'a',
    kind: 'string',
    output: true,
    keyedBy: 'arch',
    notInBuild: "build's --arch (the rootfs table's) is every stage's",
    describe: 'x86_64, aarch64, ppc64le or s390x (default: the host)',
  },
  {
    key: 'gpu',
    flag: 'gpu',
    alias: 'g',
    kind: 'string',
    output: true,
    keyedBy: 'variant',
    notInBuild: "build's own -g nvidia adds the GPU kernel beside the default one",
    describe: 'GPU variant: nvidia (modules, VFIO, no nouveau; builds headers tarball + .deb)',
  },
  { key: 'confidential', flag: 'confidential', kind: 'string', choices: CONFIDENTIAL_GUESTS, output: true, describe: 'Confidential guest fragments' },
  { key: 'fragments', flag: 'fragment', kind: 'paths', output: true, describe: 'Extra config fragment merged last (repeatable)' },
] as const satisfies readonly OptionSpec[];

export type KernelOptionValues = OptionValues<typeof KERNEL_OPTIONS>;
