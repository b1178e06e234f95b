/** Building blocks shared by several distro definitions (pure). */
import { type Arch, ARCH_FACTS } from '../core/arch.js';
import type { BootstrapInput, Command } from './types.js';

/** Writes `content` to `path` inside the builder: sh -c 'cat > "$1"' with the text on stdin (no shell quoting of data). */
export function writeFileCommand(title: string, path: string, content: string): Command {
  return { title, argv: ['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1"', 'sh', path], input: content };
}

/** Kata removes these after bootstrap (rootfs_lib.sh); we keep them out at unpack time instead. */
export const DPKG_PATH_EXCLUDES = [
  '/usr/share/man/*',
  '/usr/share/info/*',
  '/usr/share/locale/*',
  '/usr/share/doc/*',
  '/usr/share/lintian/*',
  '/usr/share/bug/*',
  '/usr/share/menu/*',
];
/** Licences stay. */
export const DPKG_PATH_INCLUDES = ['/usr/share/doc/*/copyright'];

/**
 * mmdebstrap in root mode: works in an unprivileged container (no
 * CAP_SYS_ADMIN: it skips mounting /proc, /sys and /dev and creates the device
 * nodes with mknod, which Docker's default capabilities allow); files get
 * real owners because the container's root is the host's root.
 */
export function mmdebstrapCommand(input: BootstrapInput, suite: string, components: string[]): Command {
  const argv = ['mmdebstrap', '--mode=root', '--variant=minbase', `--arch=${ARCH_FACTS[input.arch].debArch}`, `--components=${components.join(',')}`];
  if (input.packages.length > 0) argv.push(`--include=${input.packages.join(',')}`);
  argv.push('--aptopt=Acquire::Languages "none"');
  for (const p of DPKG_PATH_EXCLUDES) argv.push(`--dpkgopt=path-exclude=${p}`);
  for (const p of DPKG_PATH_INCLUDES) argv.push(`--dpkgopt=path-include=${p}`);
  argv.push(suite, input.root, input.mirror);
  return { title: `mmdebstrap ${suite}`, argv };
}

/** Names the package cache directory (as the bootstrap command sees it) for the hooks: no path is ever put in a shell string. */
export const PACKAGE_CACHE_ENV = 'OSBUILDER_PACKAGE_CACHE';
/** The build's owner tag (core/owner.ts), in the names of the hooks' temp files. */
export const PACKAGE_CACHE_OWNER_ENV = 'OSBUILDER_OWNER';

/**
 * Seeds apt's partial/ directory (never archives/) with a copy of every cached
 * .deb. apt trusts a file in archives/ by its size alone, but a file in
 * partial/ is a download to finish: apt hashes it against the signed
 * Packages index, keeps it when it matches and fetches it again when it does
 * not. The copy is private to this build: nothing apt does touches the cache.
 */
export const APT_CACHE_SEED_HOOK = `mkdir -p "$1/var/cache/apt/archives/partial" && find "$${PACKAGE_CACHE_ENV}" -maxdepth 1 -type f -name '*.deb' -exec cp -p -t "$1/var/cache/apt/archives/partial/" {} +`;

/**
 * Publishes what apt verified (every .deb in archives/ came through partial/
 * or the network, both hash-checked) into the cache, by copy to a temp file
 * and rename: concurrent builds never see a half-written .deb. Files equal to
 * the cached ones are left alone.
 */
export const APT_CACHE_STORE_HOOK = `c="$${PACKAGE_CACHE_ENV}"; for f in "$1"/var/cache/apt/archives/*.deb; do [ -f "$f" ] || continue; n="\${f##*/}"; cmp -s "$f" "$c/$n" && continue; t="$(mktemp "$c/.$n.tmp-$${PACKAGE_CACHE_OWNER_ENV}-XXXXXX")" && cp -p "$f" "$t" && mv -f "$t" "$c/$n" || exit 1; done`;

/**
 * mmdebstrap's documented package-cache recipe (its man page: sync-in/sync-out
 * with --skip=essential/unlink), with the seed in partial/ so apt verifies
 * every reused file. apt-get clean (mmdebstrap's cleanup) and the builder's
 * /var/cache/apt cleanup keep the .debs out of the rootfs.
 */
export function mmdebstrapPackageCacheArgs(): string[] {
  return ['--skip=essential/unlink', `--setup-hook=${APT_CACHE_SEED_HOOK}`, `--customize-hook=${APT_CACHE_STORE_HOOK}`];
}

export const APT_UNKNOWN_PACKAGE = [/E: Unable to locate package (\S+)/, /E: Package '([^']+)' has no installation candidate/];

/** Where tools keep their own configuration during a build (outside the rootfs). */
export const SCRATCH = '/var/tmp/osbuilder';

export interface RpmRepo {
  id: string;
  name: string;
  baseurl?: string;
  metalink?: string;
  gpgkey?: string;
}

/** A .repo file (dnf/yum INI), written to a reposdir outside the rootfs. */
export function repoFile(repos: RpmRepo[]): string {
  return repos
    .map((r) =>
      [
        `[${r.id}]`,
        `name=${r.name}`,
        ...(r.baseurl ? [`baseurl=${r.baseurl}`] : []),
        ...(r.metalink ? [`metalink=${r.metalink}`] : []),
        'enabled=1',
        ...(r.gpgkey ? ['gpgcheck=1', `gpgkey=${r.gpgkey}`] : ['gpgcheck=0']),
        '',
      ].join('\n'),
    )
    .join('\n');
}

/**
 * dnf/yum --installroot with only our repos (reposdir on the builder, a host
 * path per dnf(8)), no weak deps, no docs. `tool` is dnf or yum.
 */
export function rpmInstallCommands(tool: 'dnf' | 'yum', input: BootstrapInput, releasever: string, repos: RpmRepo[]): Command[] {
  const reposdir = `${SCRATCH}/repos.d`;
  const common = [`--installroot=${input.root}`, `--releasever=${releasever}`, `--setopt=reposdir=${reposdir}`, '--setopt=tsflags=nodocs'];
  const install = [tool, '-y', ...common];
  if (tool === 'dnf') install.push(`--forcearch=${input.arch}`, '--setopt=install_weak_deps=False');
  install.push('install', ...input.packages);
  return [
    writeFileCommand('write repository configuration', `${reposdir}/osbuilder.repo`, repoFile(repos)),
    { title: `${tool} --installroot`, argv: install },
    { title: `${tool} clean`, argv: [tool, ...common, 'clean', 'all'] },
  ];
}

export function rpmPackageQuery(root: string): Command {
  return { title: 'list packages', argv: ['rpm', `--root=${root}`, '-qa', '--qf', '%{NAME}=%{VERSION}-%{RELEASE}\\n'], capture: 'packages' };
}

export const DNF_UNKNOWN_PACKAGE = [/No match for argument: (\S+)/, /No package (\S+) available/];

export function archIs(arch: Arch, ...arches: Arch[]): boolean {
  return arches.includes(arch);
}
