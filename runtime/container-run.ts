/**
 * What `osbuilder boot -- <cmd>` runs: an OCI bundle (config.json + rootfs,
 * as runc takes it), a rootfs with the default spec, or osbuilder's busybox
 * container. Resolved and checked before any VM starts; run once the
 * sandbox is up, as kata-runtime runs a container.
 */
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { OsbuilderError } from '../core/errors.js';
import { defaultContainerRootfs } from './container-rootfs.js';
import { clone } from '@bufbuild/protobuf';
import { SpecSchema } from './gen/oci_pb.js';
import { bindMount, defaultSpec, parseConfigJson, setRoot, tmpfsMount, type Spec } from './oci.js';
import type { GuestArch } from './config.js';
import type { ContainerSource, GuestSandbox, ProcessIo } from './sandbox.js';

export interface GuestMount {
  /** A path in the guest (not shared from the host). */
  source: string;
  destination: string;
}

export interface ContainerRequest {
  /** Overrides the bundle's process.args; required without a bundle. */
  command?: string[];
  bundle?: string;
  rootfs?: string;
  hostname?: string;
  /** Bind-mounts of guest paths, read-only (to look at the guest from a container). */
  guestMounts?: GuestMount[];
  io?: ProcessIo;
  /** The guest's arch: the default container is made for it. */
  arch?: GuestArch;
}

export interface ContainerResult {
  id: string;
  source: 'bundle' | 'rootfs' | 'default';
  rootfs: string;
  argv: string[];
  exitCode: number;
  /** Collected output, when no onStdout/onStderr was given. */
  stdout: string | null;
  stderr: string | null;
  ms: number;
}

export interface ResolvedContainer {
  kind: ContainerResult['source'];
  source: ContainerSource;
  argv: string[];
  hostname: string;
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

function withGuestMounts(spec: Spec, mounts: GuestMount[]): Spec {
  const s = clone(SpecSchema, spec);
  for (const m of mounts) s.Mounts.push(bindMount(m.source, m.destination));
  return s;
}

async function fromBundle(req: ContainerRequest, bundle: string): Promise<ResolvedContainer> {
  const file = join(bundle, 'config.json');
  const text = await readFile(file, 'utf8').catch(() => {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `${bundle} is not an OCI bundle: ${file} is missing`,
      'give a directory with config.json and its rootfs (as runc takes it)',
    );
  });
  const spec = parseConfigJson(text, file);
  if (req.command?.length && spec.Process) spec.Process.Args = req.command;
  if (!spec.Process?.Args.length)
    throw new OsbuilderError('INPUT_INVALID', `${file}: process.args is empty and no command was given`, 'set process.args, or put the command after --');
  const rootfs = resolve(bundle, spec.Root?.Path ?? '');
  if (!(await isDir(rootfs)))
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `the bundle's rootfs ${rootfs} (root.path in ${file}) is not a directory`,
      'fix root.path or create the rootfs',
    );
  for (const [i, m] of (spec.Mounts ?? []).entries()) {
    const bind = m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
    const src = resolve(bundle, m.source ?? '');
    if (bind && !(await stat(src).catch(() => undefined)))
      throw new OsbuilderError(
        'INPUT_NOT_FOUND',
        `${file}: mounts[${i}] binds ${src}, which does not exist`,
        'fix the mount source (a path on this host: it is shared into the guest)',
      );
  }
  // Shared writable as runc uses it: mount points are made first, root.readonly applied last (by the agent).
  return { kind: 'bundle', source: { spec, base: bundle }, argv: spec.Process!.Args, hostname: spec.Hostname || req.hostname || 'osbuilder' };
}

/** Checks the request and finds its rootfs and spec; no VM is involved yet. */
export async function resolveContainer(req: ContainerRequest): Promise<ResolvedContainer> {
  const guest = new Set((req.guestMounts ?? []).map((m) => m.source));
  let r: ResolvedContainer;
  if (req.bundle && req.rootfs) throw new OsbuilderError('USAGE', '--bundle and --rootfs are both given', 'give one: a bundle has its own rootfs');
  if (req.bundle) {
    r = await fromBundle(req, resolve(req.bundle));
  } else {
    if (!req.command?.length)
      throw new OsbuilderError('USAGE', 'no command to run in the container', 'put it after --, e.g. osbuilder boot ... -- cat /etc/os-release');
    const hostname = req.hostname ?? 'osbuilder';
    const spec = defaultSpec({ args: req.command, hostname });
    if (req.rootfs) {
      const rootfs = resolve(req.rootfs);
      if (!(await isDir(rootfs)))
        throw new OsbuilderError('INPUT_NOT_FOUND', `--rootfs ${rootfs} is not a directory`, 'give a container root filesystem directory');
      setRoot(spec, rootfs, false);
      r = { kind: 'rootfs', source: { spec }, argv: req.command, hostname };
    } else {
      const def = await defaultContainerRootfs(req.arch ? { arch: req.arch } : {});
      setRoot(spec, def.path, true);
      spec.Mounts.push(tmpfsMount('/tmp'));
      r = { kind: 'default', source: { spec, readonlyRootfs: true }, argv: req.command, hostname };
    }
  }
  r.source = { ...r.source, spec: withGuestMounts(r.source.spec, req.guestMounts ?? []), guestSources: guest };
  return r;
}

export function newContainerId(): string {
  return `osb-${randomBytes(6).toString('hex')}`;
}

/** Runs the container to its end in a created sandbox; removes it whatever happened. */
export async function runContainer(sandbox: GuestSandbox, r: ResolvedContainer, io: ProcessIo = {}): Promise<ContainerResult> {
  const t0 = performance.now();
  const id = newContainerId();
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const c = await sandbox.createContainer(id, r.source);
  try {
    await c.start();
    const exitCode = await c.init.run({ ...io, onStdout: io.onStdout ?? ((b) => out.push(b)), onStderr: io.onStderr ?? ((b) => err.push(b)) });
    const text = (chunks: Uint8Array[], given: unknown) => (given ? null : Buffer.concat(chunks).toString('utf8'));
    return {
      id,
      source: r.kind,
      rootfs: resolve(r.source.base ?? '', r.source.spec.Root?.Path ?? ''),
      argv: r.argv,
      exitCode,
      stdout: text(out, io.onStdout),
      stderr: text(err, io.onStderr),
      ms: Math.round(performance.now() - t0),
    };
  } finally {
    await c.remove().catch(() => undefined);
  }
}
