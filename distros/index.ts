/**
 * Every distro osbuilder can build a rootfs from. Adding a distro = adding a
 * folder with definition.ts + Dockerfile.hbs and one line here.
 */
import { alpine } from './alpine/definition.js';
import { busybox } from './busybox/definition.js';
import { centos } from './centos/definition.js';
import { clearlinux } from './clearlinux/definition.js';
import { debian } from './debian/definition.js';
import { euleros } from './euleros/definition.js';
import { fedora } from './fedora/definition.js';
import { ubuntu } from './ubuntu/definition.js';
import { OsbuilderError } from '../core/errors.js';
import type { Arch } from '../core/arch.js';
import type { DistroDefinition } from './types.js';
import { testedIn, type Format } from './coverage.js';

export * from './types.js';
export { PACKAGE_CACHE_ENV, PACKAGE_CACHE_OWNER_ENV } from './common.js';
export { testedIn, coverage, type Coverage, type Format } from './coverage.js';

export const DISTROS: readonly DistroDefinition[] = [alpine, busybox, centos, clearlinux, debian, euleros, fedora, ubuntu];

export function distroNames(): string[] {
  return DISTROS.map((d) => d.name);
}

export function getDistro(name: string): DistroDefinition {
  const d = DISTROS.find((x) => x.name === name);
  if (!d) {
    throw new OsbuilderError(
      'UNKNOWN_DISTRO',
      `unknown distro "${name}"; valid distros: ${distroNames().join(', ')}`,
      'osbuilder distros lists them with their versions and arches',
    );
  }
  return d;
}

/** Resolves a version or alias ("12" -> "bookworm"); undefined when the distro has no such version. */
export function resolveVersion(d: DistroDefinition, version: string | undefined): string | undefined {
  if (version === undefined || version === '') return d.defaultVersion;
  const hit = d.versions.find((v) => v.id === version || (v.aliases ?? []).includes(version));
  if (hit) return hit.id;
  if (d.versionPattern?.test(version)) return version;
  return undefined;
}

/** The summary `osbuilder distros` prints. */
export interface DistroSummary {
  name: string;
  displayName: string;
  description: string;
  versions: string[];
  defaultVersion: string;
  arches: string[];
  bootstrapTool: string;
  packageManager: string | null;
  systemd: boolean;
  initModes: string[];
  localBase: boolean;
  /** Arch and formats the tests build and boot for real, and those they build but do not boot; the rest is rendered only. */
  booted: Array<{ arch: Arch; formats: Format[] }>;
  built: Array<{ arch: Arch; formats: Format[] }>;
}

export function summarize(d: DistroDefinition): DistroSummary {
  return {
    name: d.name,
    displayName: d.displayName,
    description: d.description,
    versions: d.versions.map((v) => v.id),
    defaultVersion: d.defaultVersion,
    arches: [...d.arches],
    bootstrapTool: d.bootstrapTool,
    packageManager: d.packageManager,
    systemd: d.initModes.includes('systemd'),
    initModes: [...d.initModes],
    localBase: d.localBase !== undefined,
    booted: testedIn(d.name, 'booted'),
    built: testedIn(d.name, 'built'),
  };
}
