/**
 * The kernel builder container image for `--engine docker`. No registry is
 * assumed: the image is bootstrapped locally from Debian's archive
 * (`mmdebstrap --variant=minbase --include=<tools> bookworm - <mirror> | docker import`)
 * and tagged by a hash of what went into it, so an existing tag is reused.
 */
import { sha256 } from '../core/hash.js';
import type { ContainerEngine } from '../core/docker.js';
import { step } from '../core/log.js';
import { ARCH_FACTS, crossCompile, type Arch } from '../core/arch.js';

export const BUILDER_PACKAGES = [
  'gcc',
  'make',
  'flex',
  'bison',
  'bc',
  'libelf-dev',
  'libssl-dev',
  'dwarves',
  'kmod',
  'cpio',
  'xz-utils',
  'zstd',
  'python3',
  'perl',
  'rsync',
  'dpkg-dev',
  'fakeroot',
];

export interface BuilderImagePlan {
  tag: string;
  suite: string;
  mirror: string;
  packages: string[];
  /** mmdebstrap argv producing a tarball on stdout. */
  bootstrap: { cmd: string; args: string[] };
  /** `docker import --change` lines. */
  changes: string[];
}

export function planBuilderImage(opts: { arch: Arch; mirror?: string; suite?: string }): BuilderImagePlan {
  const suite = opts.suite ?? 'bookworm';
  const mirror = opts.mirror ?? process.env.OSBUILDER_MIRROR ?? 'http://deb.debian.org/debian';
  const packages = [...BUILDER_PACKAGES];
  if (crossCompile(opts.arch)) packages.push(ARCH_FACTS[opts.arch].crossPackage);
  packages.sort();
  const id = sha256(JSON.stringify({ suite, mirror, packages })).slice(0, 12);
  return {
    tag: `osbuilder-kernel-builder:${suite}-${id}`,
    suite,
    mirror,
    packages,
    bootstrap: { cmd: 'mmdebstrap', args: ['--variant=minbase', `--include=${packages.join(',')}`, '--mode=auto', suite, '-', mirror] },
    changes: [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'LABEL org.osbuilder.role=kernel-builder',
      `LABEL org.osbuilder.packages=${packages.join(',')}`,
    ],
  };
}

/** Returns the tag, building the image only when it is not present locally. */
export async function ensureBuilderImage(engine: ContainerEngine, plan: BuilderImagePlan): Promise<{ tag: string; built: boolean }> {
  await engine.check();
  if (await engine.imageId(plan.tag)) return { tag: plan.tag, built: false };
  await step(`bootstrap builder image ${plan.tag} (mmdebstrap ${plan.suite} | ${engine.kind} import)`, () =>
    engine.importFrom(plan.bootstrap, plan.tag, 'mmdebstrap needs Debian archive access (set OSBUILDER_MIRROR for a local mirror)', plan.changes),
  );
  return { tag: plan.tag, built: true };
}
