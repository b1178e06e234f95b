/**
 * manifest.json of an install: what was built from what. Only inputs and
 * results go in (no wall-clock time), so an unchanged rebuild writes the same
 * bytes and the install stays untouched.
 */
import type { CacheInputs } from '../core/cache.js';
import { prettyName } from '../rootfs-builder/index.js';
import type { BootTest } from './boot-test.js';
import type { KernelArtifact, RootfsArtifact } from './stages.js';

export interface Manifest {
  tool: { name: 'kata-osbuilder'; version: string };
  arch: string;
  sourceDateEpoch: number | null;
  /** False when built with --no-boot-test: these artifacts were never booted. */
  bootTested: boolean;
  rootfs: Array<{
    role: 'image' | 'initrd';
    file: string;
    sha256: string;
    size: number;
    distro: string;
    version: string;
    initMode: string;
    osRelease: string;
    agent: { source: string; sha256: string };
    cacheKey: string;
    inputs: CacheInputs;
    packages: string[];
    /** A dm-verity image's kernel_verity_params (also in configuration-qemu.toml and root_hash_.txt). */
    kernelVerityParams?: string;
  }>;
  kernels: Array<{
    variant: string;
    version: string;
    release: string;
    configVersion: string;
    configSha256: string;
    fragmentsHash: string;
    source: { origin: string; sha256: string };
    files: Array<{ name: string; sha256: string; size: number }>;
    cacheKey: string;
  }>;
  bootTests: Array<Omit<BootTest, 'cached'>>;
  /** Files of an earlier install that this (partial) build kept, relative to the prefix. */
  kept: string[];
  /** The records of the kept image/initrd, as the earlier manifest had them (absent when none is kept). */
  keptRootfs?: Manifest['rootfs'];
}

export function buildManifest(m: {
  toolVersion: string;
  arch: string;
  sourceDateEpoch?: number;
  bootTested: boolean;
  agent: { source: string; sha256: string };
  rootfs: RootfsArtifact[];
  kernels: KernelArtifact[];
  bootTests: BootTest[];
  kept: string[];
  keptRootfs?: Manifest['rootfs'];
}): Manifest {
  return {
    tool: { name: 'kata-osbuilder', version: m.toolVersion },
    arch: m.arch,
    sourceDateEpoch: m.sourceDateEpoch ?? null,
    bootTested: m.bootTested,
    rootfs: m.rootfs.map((r) => ({
      role: r.role,
      file: r.fileName,
      sha256: r.sha256,
      size: r.size,
      distro: r.distro,
      version: r.version,
      initMode: r.initMode,
      osRelease: prettyName(r.osRelease),
      agent: m.agent,
      cacheKey: r.key,
      inputs: r.inputs,
      packages: r.packages,
      ...(r.kernelVerityParams ? { kernelVerityParams: r.kernelVerityParams } : {}),
    })),
    kernels: m.kernels.map((k) => ({
      variant: k.variant,
      version: k.version,
      release: k.release,
      configVersion: k.configVersion,
      configSha256: k.configSha256,
      fragmentsHash: k.fragmentsHash,
      source: k.source,
      files: k.files.map(({ name, sha256, size }) => ({ name, sha256, size })),
      cacheKey: k.key,
    })),
    bootTests: m.bootTests.map(({ cached: _cached, ...t }) => t),
    kept: [...m.kept].sort(),
    ...(m.keptRootfs?.length ? { keptRootfs: m.keptRootfs } : {}),
  };
}
