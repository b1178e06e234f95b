/**
 * A remote engine's rootfs (core/docker.ts `local` is false): the bootstrap writes into a named volume
 * (kept across the bootstrap commands, each in a fresh builder container),
 * and the finished tree comes back as a tar on the container's stdout,
 * unpacked on the host with its owners, modes, device nodes, hard links,
 * symlinks and xattrs. No path is shared with the engine, so DOCKER_HOST may
 * name an engine on another machine. depmod of the kernel modules copied in
 * later runs in a builder container fed the modules as a tar on stdin; only
 * its `modules.*` files come back. Argv builders are pure (unit-tested).
 */
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onInterrupt } from '../core/cleanup.js';
import type { ContainerEngine, RunSpec } from '../core/docker.js';
import type { SafeRoot } from '../core/fs-safe.js';
import type { PipeStage } from '../core/pipe.js';

/** Where depmod's scratch tree lives in its builder container. */
export const DEPMOD_BASE = '/var/tmp/osbuilder-depmod';

const XATTRS = ['--xattrs', '--xattrs-include=*'];

/** In the builder: the tree under `mountPoint` as a tar on stdout (GNU tar; owners as numbers). */
export function exportTreeArgv(mountPoint: string): string[] {
  return ['tar', '-C', mountPoint, '--numeric-owner', ...XATTRS, '-cf', '-', '.'];
}

/** On the host: that tar into `dir`, owners, modes, device nodes, links and xattrs kept (needs root). */
export function unpackTreeArgv(dir: string): string[] {
  return ['tar', '-C', dir, '--numeric-owner', '--same-owner', '--same-permissions', ...XATTRS, '-xf', '-'];
}

/** On the host: a modules directory as a tar on stdout. */
export function packDirArgv(dir: string): string[] {
  return ['tar', '-C', dir, '--numeric-owner', '-cf', '-', '.'];
}

/** On the host: depmod's answer into a scratch dir (plain files; owners are set when they are copied in). */
export function unpackScratchArgv(dir: string): string[] {
  return ['tar', '-C', dir, '--no-same-owner', '-xf', '-'];
}

/**
 * In the builder: the modules tar from stdin under <base>/lib/modules/<kver>,
 * `depmod -b`, then its `modules.*` files as a tar on stdout. The script is
 * fixed text; the kernel release is its argument, never part of it. `base` is
 * DEPMOD_BASE but in tests, which run the script on the host.
 */
export function depmodStreamArgv(kver: string, base = DEPMOD_BASE): string[] {
  const script = [
    'set -e',
    `d="${base}/lib/modules/$1"`,
    'mkdir -p "$d"',
    'tar -C "$d" -xf -',
    `depmod -b ${base} "$1"`,
    'cd "$d"',
    'exec tar --numeric-owner -cf - modules.*',
  ].join('\n');
  return ['sh', '-c', script, 'sh', kver];
}

/** Names are unique per process: `osbuilder build --jobs N` runs several rootfs builds at once. */
let seq = 0;
export function streamName(kind: 'volume' | 'export' | 'depmod'): string {
  return `osbuilder-rootfs-${kind}-${process.pid}-${seq++}`;
}

const UNPACK_HINT = 'unpacking a rootfs keeps its owners and device nodes: build as root (or with sudo); check free space in the output directory';

/** The engine-side tree of one build: a labelled volume, created, exported, removed. */
export class EngineTree {
  readonly volume = streamName('volume');
  private unregister: (() => void) | undefined;

  constructor(
    private readonly engine: ContainerEngine,
    private readonly base: Pick<RunSpec, 'image' | 'env' | 'ulimits' | 'platform'>,
    readonly mountPoint: string,
  ) {}

  async open(): Promise<void> {
    // Registered first, so an interrupt removes it after the containers using it.
    this.unregister = onInterrupt(() => this.engine.removeVolume(this.volume));
    await this.engine.createVolume(this.volume, { 'org.osbuilder.role': 'rootfs' });
  }

  /** The volume's tree, unpacked into the host directory `dir`. */
  async exportTo(dir: string): Promise<void> {
    const spec: RunSpec = {
      ...this.base,
      name: streamName('export'),
      argv: exportTreeArgv(this.mountPoint),
      volumes: [{ volume: this.volume, container: this.mountPoint }],
      labels: { 'org.osbuilder.role': 'rootfs' },
    };
    const [tar, ...args] = unpackTreeArgv(dir);
    await this.engine.runPiped([], spec, [{ cmd: tar!, args, hint: UNPACK_HINT }], { hint: 'the builder image needs GNU tar to send the rootfs back' });
  }

  async close(): Promise<void> {
    await this.engine.removeVolume(this.volume);
    this.unregister?.();
    this.unregister = undefined;
  }

  /** `argv` (depmodStreamArgv) over `modulesDir` (host) in a builder container; the modules.* files it sends back are written to `dest` in `fs`. */
  async depmod(argv: string[], modulesDir: string, fs: SafeRoot, dest: string): Promise<void> {
    const scratch = await mkdtemp(join(tmpdir(), 'osbuilder-depmod-'));
    const unregister = onInterrupt(() => rm(scratch, { recursive: true, force: true }));
    try {
      const [tarIn, ...inArgs] = packDirArgv(modulesDir);
      const [tarOut, ...outArgs] = unpackScratchArgv(scratch);
      const spec: RunSpec = { ...this.base, name: streamName('depmod'), argv, labels: { 'org.osbuilder.role': 'rootfs' } };
      await this.engine.runPiped([{ cmd: tarIn!, args: inArgs } satisfies PipeStage], spec, [{ cmd: tarOut!, args: outArgs }], {
        hint: 'the builder image needs kmod (depmod) and tar',
      });
      for (const e of (await readdir(scratch, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (!e.isFile() || !e.name.startsWith('modules.')) continue;
        const mode = (await lstat(join(scratch, e.name))).mode & 0o7777;
        await fs.copyIn(join(scratch, e.name), `${dest}/${e.name}`, { mode });
      }
    } finally {
      unregister();
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
