/**
 * A sandbox and its containers, driven the way kata-runtime drives the
 * agent: CreateSandbox with the 9p shared directory as storage, a container's
 * rootfs shared as <cid>/rootfs, CreateContainer (Root.Path in the guest) →
 * StartContainer → ReadStdout/ReadStderr until the end of stream (WriteStdin
 * / CloseStdin alongside) → WaitProcess → RemoveContainer (DestroySandbox: Vm.shutdown).
 * Only Kata's standard RPCs are sent.
 */
import { isAbsolute, resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { AgentService, type AgentClient } from './agent-client.js';
import { clone, create, type MessageInitShape } from '@bufbuild/protobuf';
import { MountSchema, RootSchema, SpecSchema, type ProcessSchema } from './gen/oci_pb.js';
import type { KernelModuleSpec } from './kernel-modules.js';
import type { Spec } from './oci.js';
import { KATA_GUEST_SHARED_DIR, SHARED_FS_TAG, type SharedDir } from './shared-fs.js';

/** Kata's default msize_9p. */
export const DEFAULT_MSIZE_9P = 8192;
/** Bytes asked for per ReadStdout / WriteStdin (well inside one 4 MiB ttrpc frame). */
export const STREAM_CHUNK = 1 << 20;

export type ProcessInit = MessageInitShape<typeof ProcessSchema>;

export interface ProcessIo {
  /** Fed to stdin, then stdin is closed; undefined = closed at once. */
  stdin?: AsyncIterable<Uint8Array> | Uint8Array;
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
}

export class GuestProcess {
  constructor(
    private readonly client: AgentClient,
    readonly containerId: string,
    readonly execId: string,
  ) {}

  private ids() {
    return { containerId: this.containerId, execId: this.execId };
  }

  /** Reads one stream until the agent says it ended (empty data). */
  async drain(stream: 'stdout' | 'stderr', onData: (chunk: Uint8Array) => void): Promise<void> {
    const method = stream === 'stdout' ? AgentService.method.readStdout : AgentService.method.readStderr;
    for (;;) {
      const r = await this.client.call(method, { ...this.ids(), len: STREAM_CHUNK });
      if (r.data.length === 0) return;
      onData(r.data);
    }
  }

  async write(data: Uint8Array): Promise<void> {
    for (let off = 0; off < data.length; off += STREAM_CHUNK) {
      const part = data.subarray(off, off + STREAM_CHUNK);
      const r = await this.client.call(AgentService.method.writeStdin, { ...this.ids(), data: part });
      if (r.len !== part.length) throw new OsbuilderError('AGENT_ERROR', `WriteStdin took ${r.len} of ${part.length} bytes`, 'the agent is misbehaving');
    }
  }

  async closeStdin(): Promise<void> {
    await this.client.call(AgentService.method.closeStdin, this.ids());
  }

  async feed(stdin: ProcessIo['stdin']): Promise<void> {
    if (stdin instanceof Uint8Array) await this.write(stdin);
    else if (stdin) for await (const chunk of stdin) await this.write(chunk);
    await this.closeStdin();
  }

  async signal(signal: number): Promise<void> {
    await this.client.call(AgentService.method.signalProcess, { ...this.ids(), signal });
  }

  /** The exit status (128 + signal when killed), as WaitProcess reports it. */
  async wait(): Promise<number> {
    return (await this.client.call(AgentService.method.waitProcess, this.ids())).status;
  }

  /** Streams until both ends close, feeding stdin alongside, then waits: kata-shim's order. */
  async run(io: ProcessIo = {}): Promise<number> {
    const ignore = () => undefined;
    await Promise.all([this.drain('stdout', io.onStdout ?? ignore), this.drain('stderr', io.onStderr ?? ignore), this.feed(io.stdin)]);
    return this.wait();
  }
}

export class GuestContainer {
  readonly init: GuestProcess;

  constructor(
    private readonly client: AgentClient,
    readonly id: string,
  ) {
    // Kata's agent names the init process after its container.
    this.init = new GuestProcess(client, id, id);
  }

  async start(): Promise<void> {
    await this.client.call(AgentService.method.startContainer, { containerId: this.id });
  }

  async exec(execId: string, process: ProcessInit): Promise<GuestProcess> {
    await this.client.call(AgentService.method.execProcess, { containerId: this.id, execId, process });
    return new GuestProcess(this.client, this.id, execId);
  }

  async remove(timeoutSec = 0): Promise<void> {
    await this.client.call(AgentService.method.removeContainer, { containerId: this.id, timeout: timeoutSec });
  }
}

export interface ContainerSource {
  /** The OCI spec; Root.Path is the rootfs on the host (relative to `base`). */
  spec: Spec;
  /** Resolves a relative Root.Path and bind sources (the bundle directory). */
  base?: string;
  /** Share the rootfs read-only. */
  readonlyRootfs?: boolean;
  /** Bind mounts whose source is a path in the guest, not on the host (never shared). */
  guestSources?: ReadonlySet<string>;
}

export class GuestSandbox {
  constructor(
    readonly client: AgentClient,
    readonly shared: SharedDir,
    readonly id: string,
    readonly msize9p = DEFAULT_MSIZE_9P,
  ) {}

  /** CreateSandbox with the shared directory as Kata's runtime sends it; the agent loads `kernelModules` first. */
  async create(hostname: string, kernelModules: readonly KernelModuleSpec[] = []): Promise<void> {
    await this.client.call(AgentService.method.createSandbox, {
      hostname,
      sandboxId: this.id,
      kernelModules: kernelModules.map((m) => ({ name: m.name, parameters: [...m.parameters] })),
      storages: [
        {
          driver: '9p',
          source: SHARED_FS_TAG,
          fstype: '9p',
          options: ['trans=virtio,version=9p2000.L,cache=mmap', 'nodev', `msize=${this.msize9p}`],
          mountPoint: `${KATA_GUEST_SHARED_DIR}/`,
        },
      ],
    });
  }

  /** Shares the rootfs and host bind sources, then CreateContainer (the init waits for start). */
  async createContainer(id: string, src: ContainerSource): Promise<GuestContainer> {
    const base = src.base ?? process.cwd();
    const host = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
    const spec = clone(SpecSchema, src.spec);
    spec.Root = create(RootSchema, {
      Path: await this.shared.shareRootfs(id, host(src.spec.Root?.Path ?? ''), !!src.readonlyRootfs),
      Readonly: !!src.spec.Root?.Readonly,
    });
    spec.Mounts = [];
    for (const m of src.spec.Mounts) {
      const bind = m.type === 'bind' || m.options.some((o) => o === 'bind' || o === 'rbind');
      const shareIt = bind && !src.guestSources?.has(m.source);
      spec.Mounts.push(shareIt ? create(MountSchema, { ...m, source: await this.shared.shareMountSource(id, host(m.source)) }) : m);
    }
    await this.client.call(AgentService.method.createContainer, { containerId: id, execId: id, OCI: spec });
    return new GuestContainer(this.client, id);
  }
}
