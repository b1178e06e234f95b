/** Runs a RootfsPlan's commands on the host or in builder containers. */
import type { ContainerEngine } from '../core/docker.js';
import { run } from '../core/exec.js';
import type { SafeRoot } from '../core/fs-safe.js';
import { step } from '../core/log.js';
import type { Command } from '../distros/index.js';
import {
  listPackagesArgv,
  packageCacheEnv,
  parsePackageListing,
  snapshotPackages,
  usesPackageCache,
  withPackageCache,
  type PackageCachePlan,
  type PackageSnapshot,
} from './package-cache.js';
import type { RootfsPlan } from './plan.js';
import { EngineTree } from './stream.js';

/** Container names are unique per process: `osbuilder build --jobs N` runs several rootfs builds at once. */
let containerSeq = 0;

/**
 * Runs the plan's commands: on the host (--engine native, straight into the
 * temp dir), or each in a fresh builder container with the temp dir
 * bind-mounted (local engine) or the engine-side tree mounted
 * (rootfs-builder/stream.ts; a remote engine), which `fetchTree` brings to the host.
 */
export class Runner {
  private readonly tree: EngineTree | undefined;

  constructor(
    private readonly plan: RootfsPlan,
    private readonly engine: ContainerEngine | undefined,
    private readonly image: string | undefined,
    private readonly hostRoot: string,
  ) {
    const c = plan.container;
    // A local engine sees hostRoot; a remote one fills a volume on its side, streamed back by fetchTree.
    if (engine && c && plan.remoteEngine)
      this.tree = new EngineTree(engine, { image: image!, env: c.env, ulimits: c.ulimits, ...(c.platform ? { platform: c.platform } : {}) }, c.mountPoint);
  }

  async open(): Promise<void> {
    await this.tree?.open();
  }

  async run(command: Command): Promise<string> {
    const pc = this.plan.packageCache;
    const cached = usesPackageCache(command, pc);
    const cmd = withPackageCache(command, pc);
    const pcEnv = cached ? packageCacheEnv(pc) : {};
    if (!this.engine) {
      const [bin, ...args] = cmd.argv;
      const r = await run(bin!, args, { input: cmd.input, timeout: 60 * 60_000, ...(cached ? { env: pcEnv } : {}) });
      return r.stdout;
    }
    const c = this.plan.container!;
    const r = await this.engine.run({
      image: this.image!,
      name: `osbuilder-rootfs-${process.pid}-${containerSeq++}`,
      argv: cmd.argv,
      mounts: cmd.builderOnly ? [] : [...(this.tree ? [] : [{ host: this.hostRoot, container: c.mountPoint }]), ...(cached ? pc.mounts : [])],
      volumes: cmd.builderOnly ? [] : [...(this.tree ? [{ volume: this.tree.volume, container: c.mountPoint }] : []), ...(cached ? pc.volumes : [])],
      env: { ...c.env, ...pcEnv },
      ulimits: c.ulimits,
      labels: { 'org.osbuilder.role': 'rootfs' },
      ...(c.platform ? { platform: c.platform } : {}),
      ...(cmd.input !== undefined ? { input: cmd.input } : {}),
    });
    return r.stdout;
  }

  /** The package cache's .debs: on the host, or listed in a container for a remote engine's volume. */
  async snapshotPackages(pc: PackageCachePlan): Promise<PackageSnapshot> {
    if (pc.volumes.length === 0 || !this.engine) return snapshotPackages(pc.hostDir);
    const r = await this.engine.run({
      image: this.image!,
      name: `osbuilder-rootfs-${process.pid}-${containerSeq++}`,
      argv: listPackagesArgv(pc.dir),
      volumes: pc.volumes,
      labels: { 'org.osbuilder.role': 'rootfs' },
      ...(this.plan.container?.platform ? { platform: this.plan.container.platform } : {}),
    });
    return parsePackageListing(r.stdout);
  }

  /** The engine-side tree, unpacked into `dir` (natively it is there already). */
  async fetchTree(dir: string): Promise<void> {
    if (this.tree) await step('fetch the rootfs from the engine (tar stream)', () => this.tree!.exportTo(dir));
  }

  /** Removes the engine-side tree (idempotent). */
  async close(): Promise<void> {
    await this.tree?.close();
  }

  async depmod(km: NonNullable<RootfsPlan['kernelModules']>, hostModules: string, fs: SafeRoot): Promise<void> {
    if (this.tree) await this.tree.depmod(km.depmod.argv, hostModules, fs, km.dest);
    else await this.run(km.depmod);
  }
}
