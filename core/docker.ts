/**
 * The container engine (docker or podman CLI) behind rootfs builds. Commands
 * are argv arrays run through core/exec; the CLI's own environment is passed
 * through, so DOCKER_HOST (docker) and CONTAINER_HOST (podman) are honoured.
 * Argument builders are pure and unit-tested; the methods run them.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { interruptedError, OsbuilderError } from './errors.js';
import { RERUN_HINT, run, formatCommand, start, type RunResult } from './exec.js';
import { interruptedBy, onInterrupt } from './cleanup.js';
import { debug } from './log.js';
import { ownerAlive, ownerTag, parseOwnerTag } from './owner.js';
import { pipeline, stageError, type PipeStage } from './pipe.js';

export type EngineKind = 'docker' | 'podman';

export interface BindMount {
  host: string;
  container: string;
  readonly?: boolean;
}

/** A named volume mounted into a container (storage on the engine's side, not a host path). */
export interface VolumeMount {
  volume: string;
  container: string;
}

export interface BuildSpec {
  tag: string;
  /** Path of the Dockerfile inside `context`. */
  dockerfile: string;
  context: string;
  buildArgs?: Record<string, string>;
  platform?: string;
  labels?: Record<string, string>;
}

/** Label on every container osbuilder runs; its value is the osbuilder process's pid. */
export const BUILD_LABEL = 'org.osbuilder.build';
/** Its owner's tag (core/owner.ts): a container whose owner is dead was left by a killed run. */
export const OWNER_LABEL = 'org.osbuilder.owner';

export interface RunSpec {
  image: string;
  name: string;
  argv: string[];
  mounts?: BindMount[];
  volumes?: VolumeMount[];
  env?: Record<string, string>;
  platform?: string;
  labels?: Record<string, string>;
  /** Fed to the container's stdin (adds -i). */
  input?: string;
  /** e.g. ['nofile=1024:1024'] */
  ulimits?: string[];
  /** --user uid:gid (files written to bind mounts keep the caller's owner). */
  user?: string;
  /** --workdir inside the container. */
  workdir?: string;
  /** --log-driver none: output streamed to us (a tar) is not also kept in the engine's logs. */
  noLogs?: boolean;
}

function sorted(record: Record<string, string> | undefined): [string, string][] {
  return Object.entries(record ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `--mount` value; refuses characters that its CSV syntax would misread. */
export function mountArg(m: BindMount): string {
  for (const p of [m.host, m.container]) {
    if (/[,"\n]/.test(p)) {
      throw new OsbuilderError(
        'OUTPUT_INVALID',
        `cannot bind-mount ${JSON.stringify(p)}: commas, quotes and newlines are not allowed in mounted paths`,
        'choose an output path without those characters',
      );
    }
  }
  return `type=bind,source=${m.host},target=${m.container}${m.readonly ? ',readonly' : ''}`;
}

/** Volume names we create: the engine's own syntax, nothing a `--mount` value could misread. */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function volumeMountArg(v: VolumeMount): string {
  if (!VOLUME_NAME.test(v.volume) || /[,"\n]/.test(v.container)) {
    throw new OsbuilderError(
      'INTERNAL',
      `cannot mount volume ${JSON.stringify(v.volume)} at ${JSON.stringify(v.container)}`,
      'this is a bug in osbuilder: rerun with --debug and report it',
    );
  }
  return `type=volume,source=${v.volume},target=${v.container}`;
}

/** `volume create` argv, labelled. */
export function volumeCreateArgv(name: string, labels: Record<string, string>): string[] {
  if (!VOLUME_NAME.test(name))
    throw new OsbuilderError('INTERNAL', `invalid volume name ${JSON.stringify(name)}`, 'this is a bug in osbuilder: rerun with --debug and report it');
  return ['volume', 'create', ...sorted(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), name];
}

/** `volume ls --format` printing "<name> <owner tag>": docker's listing has .Label, podman's a .Labels map. */
export function volumeOwnerFormat(kind: EngineKind): string {
  return kind === 'docker' ? `{{.Name}} {{.Label "${OWNER_LABEL}"}}` : `{{.Name}} {{index .Labels "${OWNER_LABEL}"}}`;
}

/** Lines of `ps`/`volume ls` printing "<name> <owner tag>": the names whose tag is not `kept` (its owner is dead). */
export function orphanNames(listing: string, kept: (tag: string) => boolean): string[] {
  const names: string[] = [];
  for (const line of listing.split('\n')) {
    const [name, tag] = line.trim().split(' ');
    if (name && tag && !kept(tag)) names.push(name);
  }
  return names;
}

export function buildArgv(spec: BuildSpec): string[] {
  const argv = ['build', '--force-rm', '-t', spec.tag, '-f', spec.dockerfile];
  if (spec.platform) argv.push('--platform', spec.platform);
  for (const [k, v] of sorted(spec.buildArgs)) argv.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of sorted(spec.labels)) argv.push('--label', `${k}=${v}`);
  argv.push(spec.context);
  return argv;
}

/**
 * `create` argv: never --privileged, no host devices; only the given mounts.
 * --rm: the engine removes it when it exits; -i keeps its stdin for `start -i`.
 */
export function createArgv(spec: RunSpec): string[] {
  const argv = ['create', '--rm', '--name', spec.name];
  if (spec.input !== undefined) argv.push('-i');
  if (spec.noLogs) argv.push('--log-driver', 'none');
  if (spec.platform) argv.push('--platform', spec.platform);
  for (const [k, v] of sorted(spec.labels)) argv.push('--label', `${k}=${v}`);
  for (const u of spec.ulimits ?? []) argv.push('--ulimit', u);
  if (spec.user) argv.push('--user', spec.user);
  if (spec.workdir) argv.push('--workdir', spec.workdir);
  for (const m of spec.mounts ?? []) argv.push('--mount', mountArg(m));
  for (const v of spec.volumes ?? []) argv.push('--mount', volumeMountArg(v));
  for (const [k, v] of sorted(spec.env)) argv.push('--env', `${k}=${v}`);
  argv.push(spec.image, ...spec.argv);
  return argv;
}

/** `start` argv: attached to the container's output (and stdin, when it has input); exits with its status. */
export function startArgv(spec: Pick<RunSpec, 'name' | 'input'>): string[] {
  return ['start', '--attach', ...(spec.input !== undefined ? ['--interactive'] : []), spec.name];
}

/** Every container and volume osbuilder makes carries its pid and its owner's tag. */
function labelled(spec: RunSpec): RunSpec {
  return { ...spec, labels: { ...spec.labels, [BUILD_LABEL]: String(process.pid), [OWNER_LABEL]: ownerTag() } };
}

const LOCAL_SOCKETS = new Set(['unix:///var/run/docker.sock', 'unix:///run/docker.sock']);

/** The docker CLI's context: DOCKER_CONTEXT, else config.json's currentContext, else "default". */
export function dockerContext(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONTEXT) return env.DOCKER_CONTEXT;
  const dir = env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  try {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { currentContext?: unknown };
    return typeof cfg.currentContext === 'string' && cfg.currentContext ? cfg.currentContext : 'default';
  } catch {
    return 'default';
  }
}

/**
 * Nothing new is created once a signal arrived: the cleanup may already have
 * passed, and what work still in flight creates then would be left behind.
 */
function refuseOnceInterrupted(): void {
  const signal = interruptedBy();
  if (signal) throw interruptedError(signal);
}

export class ContainerEngine {
  constructor(readonly kind: EngineKind) {}

  get cmd(): string {
    return this.kind;
  }

  /**
   * Does the engine share this machine's filesystem? Only when it is reached
   * through the default local socket; any other DOCKER_HOST / CONTAINER_HOST,
   * or a docker context other than "default", may be another machine.
   */
  get local(): boolean {
    if (this.kind === 'podman') return !process.env.CONTAINER_HOST;
    const host = process.env.DOCKER_HOST;
    if (host) return LOCAL_SOCKETS.has(host);
    return dockerContext() === 'default';
  }

  private endpoint(): string {
    const v = this.kind === 'docker' ? process.env.DOCKER_HOST : process.env.CONTAINER_HOST;
    return v ? ` at ${v}` : '';
  }

  /** Fails with DOCKER_UNAVAILABLE when the engine cannot be reached. */
  async check(): Promise<string> {
    let r: Awaited<ReturnType<typeof start<{ reject: false; timeout: number }>>>;
    try {
      // podman without a service has no "Server" in `version`; `info` reaches the engine either way.
      const args = this.kind === 'docker' ? ['version', '--format', '{{.Server.Version}}'] : ['info', '--format', '{{.Version.Version}}'];
      r = await start(this.cmd, args, { reject: false, timeout: 60_000 });
    } catch (err) {
      throw this.unavailable(String((err as Error).message));
    }
    if ((r as { code?: string }).code === 'ENOENT') {
      throw new OsbuilderError(
        'DOCKER_UNAVAILABLE',
        `${this.cmd} is not installed`,
        this.kind === 'docker'
          ? 'install docker.io (scripts/setup-host.sh does), or use --engine podman|native'
          : 'install podman, or use --engine docker|native',
      );
    }
    const out = String(r.stdout).trim();
    if (r.exitCode !== 0 || !out) throw this.unavailable(String(r.stderr || r.stdout));
    return out;
  }

  private unavailable(detail: string): OsbuilderError {
    const line = detail.trim().split('\n').filter(Boolean).slice(-1)[0] ?? 'no answer';
    return new OsbuilderError(
      'DOCKER_UNAVAILABLE',
      `cannot reach the ${this.kind} daemon${this.endpoint()}: ${line}`,
      this.kind === 'docker'
        ? 'start dockerd (scripts/setup-host.sh does) or fix DOCKER_HOST; --engine podman|native are alternatives'
        : 'start the podman service or fix CONTAINER_HOST; --engine docker|native are alternatives',
    );
  }

  /** A label of a local image (empty when unset or absent). */
  async imageLabel(ref: string, label: string): Promise<string> {
    const r = await start(this.cmd, ['image', 'inspect', '--format', `{{index .Config.Labels ${JSON.stringify(label)}}}`, ref], { reject: false });
    const v = String(r.stdout).trim();
    return r.exitCode === 0 && v !== '<no value>' ? v : '';
  }

  /** The platform a local image is recorded for (linux/arm64; empty when absent). */
  async imagePlatform(ref: string): Promise<string> {
    const r = await start(this.cmd, ['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', ref], { reject: false });
    return r.exitCode === 0 ? String(r.stdout).trim() : '';
  }

  /** The image id of `ref` when present locally (never pulls). */
  async imageId(ref: string): Promise<string | undefined> {
    const r = await start(this.cmd, ['image', 'inspect', '--format', '{{.Id}}', ref], { reject: false });
    return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
  }

  async build(spec: BuildSpec, hint?: string): Promise<RunResult> {
    return run(this.cmd, buildArgv(spec), { hint, timeout: 60 * 60_000 });
  }

  /**
   * Creates `spec`'s container; from then until the returned unregister, an
   * interrupt removes it (rm -f). The interrupt waits for the create to end
   * first: a `run` cut short could still be creating the container after its
   * removal, and leave it behind.
   */
  private async create(spec: RunSpec, hint: string | undefined): Promise<() => void> {
    refuseOnceInterrupted();
    const creating = run(this.cmd, createArgv(labelled(spec)), { hint, timeout: 5 * 60_000 });
    const unregister = onInterrupt(async () => {
      await creating.catch(() => undefined);
      await this.remove(spec.name);
    });
    try {
      await creating;
      return unregister;
    } catch (err) {
      unregister();
      await this.remove(spec.name);
      throw err;
    }
  }

  /**
   * Runs a container to completion (create, then start attached). While it
   * runs, an interrupt removes it, so Ctrl-C never leaves a builder container
   * behind. Every container carries BUILD_LABEL=<our pid>: what a run started is found by it.
   */
  async run(spec: RunSpec, opts: { hint?: string; timeout?: number; onOutput?: (chunk: string) => void } = {}): Promise<RunResult> {
    const unregister = await this.create(spec, opts.hint);
    try {
      return await run(this.cmd, startArgv(spec), {
        input: spec.input,
        hint: opts.hint,
        timeout: opts.timeout ?? 60 * 60_000,
        onOutput: opts.onOutput,
      });
    } catch (err) {
      await this.remove(spec.name);
      throw err;
    } finally {
      unregister();
    }
  }

  /**
   * Runs `spec`'s container as one stage of a pipeline (core/pipe.ts): its
   * stdin and stdout are the pipe's. Labelled like every container; removed
   * when the pipeline fails or is interrupted (a dead client does not stop it).
   */
  async runPiped(before: PipeStage[], spec: RunSpec, after: PipeStage[], opts: { hint?: string; timeout?: number } = {}): Promise<void> {
    // -i (an `input`) when a stage feeds it; the pipe, not `input`, is its stdin.
    const piped = { ...spec, noLogs: true, ...(before.length ? { input: '' } : {}) };
    const unregister = await this.create(piped, opts.hint);
    const stage: PipeStage = { cmd: this.cmd, args: startArgv(piped), ...(opts.hint ? { hint: opts.hint } : {}) };
    try {
      await pipeline([...before, stage, ...after], { timeout: opts.timeout ?? 60 * 60_000 });
    } catch (err) {
      await this.remove(spec.name);
      throw err;
    } finally {
      unregister();
    }
  }

  /** Creates a named volume carrying our labels (its owner's tag: a killed run's volume is found and removed). */
  async createVolume(name: string, labels: Record<string, string> = {}): Promise<void> {
    refuseOnceInterrupted();
    await run(this.cmd, volumeCreateArgv(name, { ...labels, [BUILD_LABEL]: String(process.pid), [OWNER_LABEL]: ownerTag() }), { timeout: 60_000 });
  }

  /** Removes a volume by name; an absent one is fine. */
  async removeVolume(name: string): Promise<void> {
    await start(this.cmd, ['volume', 'rm', '-f', name], { reject: false });
  }

  /** Removes the containers, then the volumes, whose osbuilder process is dead (SIGKILL, OOM): nothing else. */
  async removeOrphans(): Promise<void> {
    // A tag we cannot read is not ours to judge: kept.
    const kept = (tag: string) => {
      const o = parseOwnerTag(tag);
      return o === undefined || ownerAlive(o);
    };
    const ps = await start(this.cmd, ['ps', '-a', '--filter', `label=${OWNER_LABEL}`, '--format', `{{.Names}} {{.Label "${OWNER_LABEL}"}}`], {
      reject: false,
      timeout: 60_000,
    });
    for (const name of orphanNames(String(ps.stdout), kept)) await this.remove(name);
    const vols = await start(this.cmd, ['volume', 'ls', '--filter', `label=${OWNER_LABEL}`, '--format', volumeOwnerFormat(this.kind)], {
      reject: false,
      timeout: 60_000,
    });
    for (const name of orphanNames(String(vols.stdout), kept)) await this.removeVolume(name);
  }

  /** Removes a container by name; absent containers are fine. */
  async remove(name: string): Promise<void> {
    await start(this.cmd, ['rm', '-f', name], { reject: false });
  }

  /**
   * An image from the rootfs tar `producer` writes on stdout; `changes` are Dockerfile lines
   * (e.g. LABEL k=v). Tagged only when the producer succeeded: a failed one's partial (or
   * empty) tar must not stand under `tag`, which callers reuse when present. With `platform`
   * the image is recorded as that platform's (`import` records the engine's own, whatever
   * the tar holds): built FROM scratch with the tar ADDed, owners and modes kept.
   */
  async importFrom(producer: PipeStage, tag: string, hint?: string, changes: string[] = [], platform?: string): Promise<string> {
    return platform ? this.importAs(producer, tag, hint, changes, platform) : this.importPiped(producer, tag, hint, changes);
  }

  /** `producer | <engine> import -`, then the tag. */
  private async importPiped(producer: PipeStage, tag: string, hint: string | undefined, changes: string[]): Promise<string> {
    const importArgs = ['import', ...changes.flatMap((c) => ['--change', c]), '-'];
    debug(`$ ${formatCommand(producer.cmd, producer.args)} | ${formatCommand(this.cmd, importArgs)}`);
    const source = start(producer.cmd, producer.args, { ...PRODUCER_OPTS, env: producer.env, stdout: 'pipe' });
    const sink = start(this.cmd, importArgs, { stdin: 'pipe', reject: false });
    source.stdout!.pipe(sink.stdin!);
    const unregister = onInterrupt(() => {
      source.kill('SIGTERM');
      sink.kill('SIGTERM');
    });
    try {
      const [src, dst] = await Promise.all([source, sink]);
      const imported = String(dst.stdout ?? '').trim();
      if (src.exitCode !== 0 && imported) await start(this.cmd, ['rmi', '-f', imported], { reject: false });
      if (src.exitCode !== 0) throw stageError({ ...producer, hint: hint ?? RERUN_HINT }, src);
      if (dst.exitCode !== 0) {
        throw new OsbuilderError('COMMAND_FAILED', `${this.cmd} import failed: ${String(dst.stderr).trim()}`, hint ?? RERUN_HINT);
      }
      await run(this.cmd, ['tag', imported, tag], { hint: hint ?? RERUN_HINT });
      return imported;
    } finally {
      unregister();
    }
  }

  /** The producer's tar in a scratch context, then `build --platform` FROM scratch with it ADDed (ADD keeps owners; COPY would not). */
  private async importAs(producer: PipeStage, tag: string, hint: string | undefined, changes: string[], platform: string): Promise<string> {
    const ctx = await mkdtemp(join(tmpdir(), 'osbuilder-import-'));
    const unregister = onInterrupt(() => rm(ctx, { recursive: true, force: true }));
    try {
      debug(`$ ${formatCommand(producer.cmd, producer.args)} > ${join(ctx, 'root.tar')}`);
      const src = await start(producer.cmd, producer.args, { ...PRODUCER_OPTS, env: producer.env, stdout: { file: join(ctx, 'root.tar') } });
      if (src.exitCode !== 0) throw stageError({ ...producer, hint: hint ?? RERUN_HINT }, src);
      await writeFile(join(ctx, 'Dockerfile'), ['FROM scratch', 'ADD root.tar /', ...changes, ''].join('\n'));
      await this.build({ tag, dockerfile: join(ctx, 'Dockerfile'), context: ctx, platform }, hint);
      return (await this.imageId(tag)) ?? tag;
    } finally {
      unregister();
      await rm(ctx, { recursive: true, force: true });
    }
  }
}

/**
 * How a tar producer runs: its stdout never buffered (a rootfs passes execa's
 * maxBuffer, which would kill it), in its own process group (mmdebstrap ends a
 * failed tar with SIGHUP to its whole group, which would take osbuilder too).
 */
const PRODUCER_OPTS = { stderr: 'pipe', reject: false, buffer: { stdout: false }, detached: true } as const;
