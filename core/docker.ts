/**
 * The container engine (docker or podman CLI) behind rootfs builds. Commands
 * are argv arrays run through core/exec; the CLI's own environment is passed
 * through, so DOCKER_HOST (docker) and CONTAINER_HOST (podman) are honoured.
 * Argument builders are pure and unit-tested; the methods run them.
 */
import { OsbuilderError } from './errors.js';
import { RERUN_HINT, run, formatCommand, start, type RunResult } from './exec.js';
import { onInterrupt } from './cleanup.js';
import { debug } from './log.js';
import { ownerAlive, ownerTag, parseOwnerTag } from './owner.js';

export type EngineKind = 'docker' | 'podman';

export interface BindMount {
  host: string;
  container: string;
  readonly?: boolean;
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
}

function sorted(record: Record<string, string> | undefined): [string, string][] {
  return Object.entries(record ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `--mount` value; refuses characters that its CSV syntax would misread. */
export function mountArg(m: BindMount): string {
  for (const p of [m.host, m.container]) {
    if (/[,"\n]/.test(p)) {
      throw new OsbuilderError('OUTPUT_INVALID', `cannot bind-mount ${JSON.stringify(p)}: commas, quotes and newlines are not allowed in mounted paths`, 'choose an output path without those characters');
    }
  }
  return `type=bind,source=${m.host},target=${m.container}${m.readonly ? ',readonly' : ''}`;
}

export function buildArgv(spec: BuildSpec): string[] {
  const argv = ['build', '--force-rm', '-t', spec.tag, '-f', spec.dockerfile];
  if (spec.platform) argv.push('--platform', spec.platform);
  for (const [k, v] of sorted(spec.buildArgs)) argv.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of sorted(spec.labels)) argv.push('--label', `${k}=${v}`);
  argv.push(spec.context);
  return argv;
}

/** `run` argv: never --privileged, no host devices; only the given mounts. */
export function runArgv(spec: RunSpec): string[] {
  const argv = ['run', '--rm', '--name', spec.name];
  if (spec.input !== undefined) argv.push('-i');
  if (spec.platform) argv.push('--platform', spec.platform);
  for (const [k, v] of sorted(spec.labels)) argv.push('--label', `${k}=${v}`);
  for (const u of spec.ulimits ?? []) argv.push('--ulimit', u);
  if (spec.user) argv.push('--user', spec.user);
  if (spec.workdir) argv.push('--workdir', spec.workdir);
  for (const m of spec.mounts ?? []) argv.push('--mount', mountArg(m));
  for (const [k, v] of sorted(spec.env)) argv.push('--env', `${k}=${v}`);
  argv.push(spec.image, ...spec.argv);
  return argv;
}

export class ContainerEngine {
  constructor(readonly kind: EngineKind) {}

  get cmd(): string {
    return this.kind;
  }

  private endpoint(): string {
    const v = this.kind === 'docker' ? process.env.DOCKER_HOST : process.env.CONTAINER_HOST;
    return v ? ` at ${v}` : '';
  }

  /** Fails with DOCKER_UNAVAILABLE when the engine cannot be reached. */
  async check(): Promise<string> {
    let r;
    try {
      // podman without a service has no "Server" in `version`; `info` reaches the engine either way.
      const args = this.kind === 'docker' ? ['version', '--format', '{{.Server.Version}}'] : ['info', '--format', '{{.Version.Version}}'];
      r = await start(this.cmd, args, { reject: false, timeout: 60_000 });
    } catch (err) {
      throw this.unavailable(String((err as Error).message));
    }
    if ((r as { code?: string }).code === 'ENOENT') {
      throw new OsbuilderError('DOCKER_UNAVAILABLE', `${this.cmd} is not installed`, this.kind === 'docker' ? 'install docker.io (scripts/setup-host.sh does), or use --engine podman|native' : 'install podman, or use --engine docker|native');
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

  /** The image id of `ref` when present locally (never pulls). */
  async imageId(ref: string): Promise<string | undefined> {
    const r = await start(this.cmd, ['image', 'inspect', '--format', '{{.Id}}', ref], { reject: false });
    return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
  }

  async build(spec: BuildSpec, hint?: string): Promise<RunResult> {
    return run(this.cmd, buildArgv(spec), { hint, timeout: 60 * 60_000 });
  }

  /**
   * Runs a container to completion. While it runs, an interrupt removes it
   * (docker rm -f), so Ctrl-C never leaves a builder container behind. Every
   * container carries BUILD_LABEL=<our pid>: what a run started is found by it.
   */
  async run(spec: RunSpec, opts: { hint?: string; timeout?: number; onOutput?: (chunk: string) => void } = {}): Promise<RunResult> {
    const unregister = onInterrupt(() => this.remove(spec.name));
    const labelled = { ...spec, labels: { ...spec.labels, [BUILD_LABEL]: String(process.pid), [OWNER_LABEL]: ownerTag() } };
    try {
      return await run(this.cmd, runArgv(labelled), { input: spec.input, hint: opts.hint, timeout: opts.timeout ?? 60 * 60_000, onOutput: opts.onOutput });
    } catch (err) {
      await this.remove(spec.name);
      throw err;
    } finally {
      unregister();
    }
  }

  /** Removes the containers whose osbuilder process is dead (SIGKILL, OOM): nothing else. */
  async removeOrphans(): Promise<void> {
    const r = await start(this.cmd, ['ps', '-a', '--filter', `label=${OWNER_LABEL}`, '--format', `{{.Names}} {{.Label "${OWNER_LABEL}"}}`], { reject: false, timeout: 60_000 });
    for (const line of String(r.stdout).split('\n')) {
      const [name, tag] = line.trim().split(' ');
      const o = tag ? parseOwnerTag(tag) : undefined;
      if (name && o && !ownerAlive(o)) await this.remove(name);
    }
  }

  /** Removes a container by name; absent containers are fine. */
  async remove(name: string): Promise<void> {
    await start(this.cmd, ['rm', '-f', name], { reject: false });
  }

  /** Pipes a tar stream from `producer` into `<engine> import - <tag>`; `changes` are Dockerfile lines (e.g. LABEL k=v). */
  async importFrom(producer: { cmd: string; args: string[]; env?: Record<string, string> }, tag: string, hint?: string, changes: string[] = []): Promise<string> {
    const importArgs = ['import', ...changes.flatMap((c) => ['--change', c]), '-', tag];
    debug(`$ ${formatCommand(producer.cmd, producer.args)} | ${formatCommand(this.cmd, importArgs)}`);
    const source = start(producer.cmd, producer.args, { env: producer.env, stdout: 'pipe', stderr: 'pipe', reject: false, buffer: { stdout: false } });
    const sink = start(this.cmd, importArgs, { stdin: 'pipe', reject: false });
    source.stdout!.pipe(sink.stdin!);
    const unregister = onInterrupt(() => {
      source.kill('SIGTERM');
      sink.kill('SIGTERM');
    });
    try {
      const [src, dst] = await Promise.all([source, sink]);
      if ((src as { code?: string }).code === 'ENOENT') {
        throw new OsbuilderError('TOOL_MISSING', `${producer.cmd} is not installed`, hint ?? 'install it (on Debian: see scripts/setup-host.sh)');
      }
      if (src.exitCode !== 0) {
        const tail = String(src.stderr ?? '').trimEnd().split('\n').slice(-15).join('\n');
        throw new OsbuilderError('COMMAND_FAILED', `${formatCommand(producer.cmd, producer.args)} failed (exit ${src.exitCode})${tail ? `:\n${tail}` : ''}`, hint ?? RERUN_HINT);
      }
      if (dst.exitCode !== 0) {
        throw new OsbuilderError('COMMAND_FAILED', `${this.cmd} import failed: ${String(dst.stderr).trim()}`, hint ?? RERUN_HINT);
      }
      return String(dst.stdout).trim();
    } finally {
      unregister();
    }
  }
}
