/**
 * Building the guest agent: a pure plan (compiler, flags, sources, or the
 * container that runs them) and an executor. Results are cached by a key over
 * the source hash, compiler identity, flags and arch, so other stages get the
 * agent cheaply (defaultAgentBinary).
 */
import { copyFile, chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { arch as hostArchNode, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { BuildCache, cacheKey, type CacheInputs } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool, run } from '../core/exec.js';
import { ContainerEngine, type EngineKind, type RunSpec } from '../core/docker.js';
import { atomicOutput, checkOutputPath } from '../core/atomic.js';
import { sha256, sha256File } from '../core/hash.js';
import { TOOL_VERSION } from '../core/version.js';
import { step } from '../core/log.js';

export type AgentArch = 'x86_64' | 'aarch64' | 'ppc64le' | 's390x';
export type AgentEngine = 'native' | EngineKind;

/** Directory of the C sources (agent/src), in the source tree and in dist/. */
export function agentSourceDir(): string {
  return fileURLToPath(new URL('./src/', import.meta.url));
}

/** The .proto files documenting the wire protocol (agent/proto). */
export function agentProtoDir(): string {
  return fileURLToPath(new URL('./proto/', import.meta.url));
}

export function hostArch(): AgentArch {
  const a = hostArchNode();
  if (a === 'x64') return 'x86_64';
  if (a === 'arm64') return 'aarch64';
  if (a === 'ppc64') return 'ppc64le';
  if (a === 's390x') return 's390x';
  throw new OsbuilderError('UNSUPPORTED_ARCH', `host architecture ${a} is not supported`, 'build on x86_64, aarch64, ppc64le or s390x');
}

/** GNU triplets of Debian's cross compilers (gcc-<triplet>). */
const TRIPLET: Record<AgentArch, string> = {
  x86_64: 'x86_64-linux-gnu',
  aarch64: 'aarch64-linux-gnu',
  ppc64le: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
};

/** Debian packages that provide a compiler able to link the agent statically for `arch`. */
export function compilerPackages(arch: AgentArch, native: AgentArch): string[] {
  if (arch === native) return arch === 'x86_64' || arch === 'aarch64' ? ['gcc', 'libc6-dev', 'musl-tools'] : ['gcc', 'libc6-dev'];
  const t = TRIPLET[arch];
  return [`gcc-${t}`, `libc6-dev-${{ x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64el', s390x: 's390x' }[arch]}-cross`];
}

/** Compiler command for `arch`, preferring musl (a ~100 KiB binary) over static glibc (~900 KiB). */
export function chooseCompiler(arch: AgentArch, native: AgentArch, available: (cmd: string) => boolean): string | undefined {
  const candidates = arch === native ? ['musl-gcc', 'gcc', `${TRIPLET[arch]}-gcc`] : [`${TRIPLET[arch]}-gcc`];
  return candidates.find(available);
}

export const AGENT_CFLAGS = [
  '-std=c11',
  '-Os',
  '-static',
  '-s',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-fno-ident',
  '-Wl,--build-id=sha1',
  '-Wl,--hash-style=gnu',
];

export interface AgentSources {
  /** File names under agent/src, sorted. */
  files: string[];
  /** sha256 over names and contents. */
  hash: string;
  /** The bytes hashed: builds compile a copy of exactly these. */
  contents?: Record<string, Buffer>;
}

export async function readAgentSources(dir = agentSourceDir()): Promise<AgentSources> {
  const files = (await readdir(dir)).filter((f) => /\.[ch]$/.test(f)).sort();
  if (!files.some((f) => f.endsWith('.c'))) {
    throw new OsbuilderError('INPUT_NOT_FOUND', `no agent sources in ${dir}`, 'reinstall osbuilder: agent/src is part of the package');
  }
  const parts: string[] = [];
  const contents: Record<string, Buffer> = {};
  for (const f of files) {
    contents[f] = await readFile(join(dir, f));
    parts.push(f, sha256(contents[f]!));
  }
  return { files, hash: sha256(parts.join('\n')), contents };
}

/** The version string compiled into the agent and reported by grpc.Health/Version. */
export function agentVersion(sourceHash: string): string {
  return `${TOOL_VERSION}+${sourceHash.slice(0, 12)}`;
}

export interface AgentBuildInput {
  arch: AgentArch;
  engine: AgentEngine;
  /** The compiler to run (native: chosen by chooseCompiler; container: musl-gcc or the cross gcc). */
  compiler: string;
  sources: AgentSources;
  srcDir: string;
  /** Where the compiler writes (a temp path). */
  output: string;
  mirror?: string;
}

export interface AgentBuildPlan {
  arch: AgentArch;
  engine: AgentEngine;
  compiler: string;
  version: string;
  cflags: string[];
  /** Native: the compiler argv. Container: the argv run inside the builder. */
  compile: { cmd: string; args: string[] };
  /** Container builds: the builder image and how it is made locally (no registry needed). */
  builder?: { ref: string; packages: string[]; bootstrap: { cmd: string; args: string[] } };
  run?: RunSpec;
}

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';

/** Pure: the commands that build the agent. */
export function planAgentBuild(input: AgentBuildInput): AgentBuildPlan {
  const version = agentVersion(input.sources.hash);
  const inContainer = input.engine !== 'native';
  const srcDir = inContainer ? '/src' : input.srcDir.replace(/\/$/, '');
  const output = inContainer ? '/out/kata-agent' : input.output;
  const cflags = [...AGENT_CFLAGS, `-ffile-prefix-map=${srcDir}=agent/src`, `-DAGENT_VERSION="${version}"`];
  const args = [...cflags, '-o', output, ...input.sources.files.filter((f) => f.endsWith('.c')).map((f) => `${srcDir}/${f}`)];
  const plan: AgentBuildPlan = { arch: input.arch, engine: input.engine, compiler: input.compiler, version, cflags, compile: { cmd: input.compiler, args } };
  if (inContainer) {
    // The builder runs on the host's arch; other arches use Debian's cross gcc.
    const native = hostArch();
    const packages = compilerPackages(input.arch, native);
    const ref = `osbuilder-agent-builder:${sha256(packages.join(',')).slice(0, 12)}`;
    plan.builder = {
      ref,
      packages,
      bootstrap: {
        cmd: 'mmdebstrap',
        args: ['--mode=root', '--variant=minbase', `--include=${packages.join(',')}`, '--aptopt=Acquire::Languages "none"', 'bookworm', '-', input.mirror ?? DEBIAN_MIRROR],
      },
    };
    plan.run = {
      image: ref,
      name: `osbuilder-agent-build-${process.pid}-${Date.now().toString(36)}`,
      argv: [input.compiler, ...args],
      mounts: [
        { host: input.srcDir.replace(/\/$/, ''), container: '/src', readonly: true },
        { host: input.output.replace(/\/[^/]+$/, ''), container: '/out' },
      ],
      labels: { 'io.osbuilder.stage': 'agent' },
    };
  }
  return plan;
}

export interface BuildAgentOptions {
  /** Where the binary goes; written atomically. */
  output: string;
  engine?: AgentEngine;
  arch?: AgentArch;
  /** Debian mirror for making the builder image (container engines). */
  mirror?: string;
}

export interface AgentBuildResult {
  path: string;
  arch: AgentArch;
  engine: AgentEngine;
  compiler: string;
  version: string;
  sha256: string;
  size: number;
  sourceHash: string;
  /** True when the binary came from the build cache. */
  cached: boolean;
}

async function compilerIdentity(cmd: string): Promise<string> {
  const r = await execa(cmd, ['--version'], { reject: false });
  const first = String(r.stdout).split('\n')[0] ?? '';
  if (cmd !== 'musl-gcc') return first;
  // musl-gcc wraps gcc; the musl version matters too.
  const musl = await execa('dpkg-query', ['-W', '-f=${Version}', 'musl-dev'], { reject: false });
  return `${first} musl ${String(musl.stdout).trim()}`;
}

/** Runs a plan, writing the binary to plan's output (a temp path owned by the caller). */
async function executePlan(plan: AgentBuildPlan, input: AgentBuildInput): Promise<void> {
  if (plan.engine === 'native') {
    await run(plan.compile.cmd, plan.compile.args, { hint: 'the agent sources must compile cleanly; rerun with --debug to see the compiler output' });
    return;
  }
  const engine = new ContainerEngine(plan.engine);
  await engine.check();
  const builder = plan.builder!;
  if (!(await engine.imageId(builder.ref))) {
    if (!(await haveTool('mmdebstrap'))) {
      throw new OsbuilderError('TOOL_MISSING', 'mmdebstrap is not installed (it makes the agent builder image locally)', 'apt-get install mmdebstrap, or use --engine native');
    }
    await step(`make builder image ${builder.ref} (mmdebstrap | ${engine.kind} import)`, () =>
      engine.importFrom(builder.bootstrap, builder.ref, 'check that the Debian mirror is reachable (--mirror), or use --engine native'),
    );
  }
  // The compiler writes into a fresh directory mounted at /out; copy the result to the temp path.
  const outDir = input.output.replace(/\/[^/]+$/, '');
  await engine.run(plan.run!, { hint: 'the agent sources must compile cleanly; rerun with --debug to see the compiler output' });
  const produced = join(outDir, 'kata-agent');
  if (produced !== input.output) await copyFile(produced, input.output);
}

async function resolveCompiler(arch: AgentArch, engine: AgentEngine): Promise<string> {
  const native = hostArch();
  if (engine !== 'native') return arch === native ? (arch === 'x86_64' || arch === 'aarch64' ? 'musl-gcc' : 'gcc') : `${TRIPLET[arch]}-gcc`;
  const seen = new Map<string, boolean>();
  for (const c of ['musl-gcc', 'gcc', `${TRIPLET[arch]}-gcc`]) seen.set(c, await haveTool(c));
  const cc = chooseCompiler(arch, native, (c) => seen.get(c) ?? false);
  if (!cc) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      `no C compiler that can build a static agent for ${arch} on this ${native} host`,
      arch === native ? 'apt-get install musl-tools (or build-essential)' : `apt-get install ${compilerPackages(arch, native).join(' ')}, or use --engine docker`,
    );
  }
  return cc;
}

/** Builds (or reuses from the cache) the agent and writes it to `output`. */
export async function buildAgent(opts: BuildAgentOptions): Promise<AgentBuildResult> {
  await checkOutputPath(opts.output);
  const entry = await cachedAgent(opts);
  return atomicOutput(opts.output, async (tmp) => {
    await copyFile(join(entry.dir, 'kata-agent'), tmp);
    await chmod(tmp, 0o755);
    return { ...entry.result, path: opts.output };
  });
}

/** osbuilder's own agent for `arch`, built into the cache when missing; returns the cached path. */
export async function defaultAgentBinary(opts: { arch?: AgentArch; engine?: AgentEngine } = {}): Promise<AgentBuildResult> {
  const entry = await cachedAgent(opts);
  return { ...entry.result, path: join(entry.dir, 'kata-agent') };
}

/** Alias kept short for callers that want just the path. */
export async function defaultAgentPath(arch?: AgentArch): Promise<string> {
  return (await defaultAgentBinary(arch ? { arch } : {})).path;
}

async function cachedAgent(opts: { arch?: AgentArch; engine?: AgentEngine; mirror?: string }): Promise<{ dir: string; result: AgentBuildResult }> {
  const arch = opts.arch ?? hostArch();
  const engine = opts.engine ?? 'native';
  const srcDir = agentSourceDir();
  const sources = await readAgentSources(srcDir);
  const compiler = await resolveCompiler(arch, engine);
  // Container builds are keyed by their builder's package set; native ones by the compiler found.
  const identity = engine === 'native' ? await compilerIdentity(compiler) : `container ${compilerPackages(arch, hostArch()).join(',')}`;
  const probe = planAgentBuild({ arch, engine, compiler, sources, srcDir, output: '/out/kata-agent' });
  const inputs: CacheInputs = { sourceHash: sources.hash, arch, engine: engine === 'native' ? 'native' : 'container', compiler, identity, cflags: probe.cflags.filter((f) => !f.startsWith('-ffile-prefix-map')), version: probe.version };
  const key = cacheKey(inputs);
  const cache = new BuildCache();
  const found = await cache.lookup<AgentBuildResult>('agent', key);
  if (found) return { dir: found.dir, result: { ...found.meta, cached: true } };
  const entry = await step(`build agent for ${arch} (${compiler}${engine === 'native' ? '' : ` in ${engine}`})`, () =>
    cache.store<AgentBuildResult>('agent', key, inputs, async (dir) => {
      const work = join(tmpdir(), `osbuilder-agent-${process.pid}-${Date.now().toString(36)}`);
      await mkdir(work, { recursive: true });
      try {
        // Compile a snapshot of the hashed sources, so the entry matches its key even if agent/src changes meanwhile.
        const snapshot = join(work, 'src');
        await mkdir(snapshot);
        for (const f of sources.files) await writeFile(join(snapshot, f), sources.contents![f]!);
        const outDir = join(work, 'out');
        await mkdir(outDir);
        const output = join(outDir, 'kata-agent');
        const input: AgentBuildInput = { arch, engine, compiler, sources, srcDir: snapshot, output, ...(opts.mirror ? { mirror: opts.mirror } : {}) };
        await executePlan(planAgentBuild(input), input);
        const st = await stat(output).catch(() => undefined);
        if (!st?.isFile() || st.size === 0) throw new OsbuilderError('VERIFY_FAILED', 'the compiler produced no agent binary', 'rerun with --debug to see the compiler output');
        await verifyAgentBinary(output, arch);
        await copyFile(output, join(dir, 'kata-agent'));
        await chmod(join(dir, 'kata-agent'), 0o755);
        return {
          path: join(dir, 'kata-agent'),
          arch,
          engine,
          compiler,
          version: probe.version,
          sha256: await sha256File(output),
          size: st.size,
          sourceHash: sources.hash,
          cached: false,
        };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    }),
  );
  return { dir: entry.dir, result: entry.meta };
}

const ELF_MACHINE: Record<AgentArch, number> = { x86_64: 62, aarch64: 183, ppc64le: 21, s390x: 22 };

/** The binary is a static ELF executable for `arch` (no PT_INTERP). */
export async function verifyAgentBinary(path: string, arch: AgentArch): Promise<void> {
  const b = await readFile(path);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new OsbuilderError('VERIFY_FAILED', `${path} is not an ELF file`, 'rebuild the agent');
  const le = b[5] === 1;
  const machine = le ? b.readUInt16LE(18) : b.readUInt16BE(18);
  if (machine !== ELF_MACHINE[arch]) throw new OsbuilderError('VERIFY_FAILED', `${path} is built for ELF machine ${machine}, not ${arch}`, 'rebuild the agent for the right arch');
  const is64 = b[4] === 2;
  const phoff = Number(is64 ? (le ? b.readBigUInt64LE(32) : b.readBigUInt64BE(32)) : le ? b.readUInt32LE(28) : b.readUInt32BE(28));
  const phentsize = le ? b.readUInt16LE(is64 ? 54 : 42) : b.readUInt16BE(is64 ? 54 : 42);
  const phnum = le ? b.readUInt16LE(is64 ? 56 : 44) : b.readUInt16BE(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) break;
    const type = le ? b.readUInt32LE(off) : b.readUInt32BE(off);
    if (type === 3) throw new OsbuilderError('VERIFY_FAILED', `${path} is dynamically linked (has PT_INTERP)`, 'the agent must be static: it runs before any libc is known to exist');
  }
}
