/**
 * Building the guest agent: a pure plan (compiler, flags, sources, or the
 * container that runs them) and an executor. Results are cached by a key over
 * the source hash, compiler identity, flags and arch, so other stages get the
 * agent cheaply (defaultAgentBinary).
 */
import { existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildCache, cacheKey, type CacheInputs } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool, run, start, which } from '../core/exec.js';
import { ContainerEngine, type EngineKind, type RunSpec } from '../core/docker.js';
import { atomicOutput, checkOutputPath } from '../core/atomic.js';
import { sha256, sha256File } from '../core/hash.js';
import { memoByFiles } from '../core/memo.js';
import { TOOL_VERSION } from '../core/version.js';
import { step } from '../core/log.js';
import { ARCH_FACTS, hostArch, type Arch } from '../core/arch.js';
import { isMuslArch, muslInstalled, muslSpecs } from './musl.js';

export type AgentEngine = 'native' | EngineKind;
export type AgentLibc = 'musl' | 'glibc';

/** The agent's directory (src/ and proto/), in the source tree and in dist/. */
export function agentDir(): string {
  return fileURLToPath(new URL('./', import.meta.url));
}

/** The .proto files of the agent protocol (agent/proto): the agent and the runtime are generated from them. */
export function agentProtoDir(): string {
  return join(agentDir(), 'proto');
}

/** Debian packages for the protocol code: the generator (host arch) and the runtime library (target arch). */
export const PROTOBUF_C_PACKAGES = ['protobuf-c-compiler', 'libprotobuf-dev'];

/** Debian packages that provide a compiler able to link the agent statically for `arch`, and protobuf-c. */
export function compilerPackages(arch: Arch, native: Arch): string[] {
  const lib = arch === native ? 'libprotobuf-c-dev' : `libprotobuf-c-dev:${ARCH_FACTS[arch].debArch}`;
  if (arch === native)
    return [...(arch === 'x86_64' || arch === 'aarch64' ? ['gcc', 'libc6-dev', 'musl-tools'] : ['gcc', 'libc6-dev']), ...PROTOBUF_C_PACKAGES, lib];
  const t = ARCH_FACTS[arch].triplet;
  const musl = isMuslArch(arch) ? [`musl-dev:${ARCH_FACTS[arch].debArch}`] : [];
  return [`gcc-${t}`, `libc6-dev-${ARCH_FACTS[arch].debArch}-cross`, ...musl, ...PROTOBUF_C_PACKAGES, lib];
}

/** Compiler command for `arch`, preferring musl (a ~200 KiB binary) over static glibc (~900 KiB). */
export function chooseCompiler(arch: Arch, native: Arch, available: (cmd: string) => boolean): string | undefined {
  const candidates = arch === native ? ['musl-gcc', 'gcc', `${ARCH_FACTS[arch].triplet}-gcc`] : [`${ARCH_FACTS[arch].triplet}-gcc`];
  return candidates.find(available);
}

/** protobuf-c's static runtime library for `arch` (Debian's multiarch path). */
export function protobufCLibrary(arch: Arch): string {
  return `/usr/lib/${ARCH_FACTS[arch].triplet}/libprotobuf-c.a`;
}

/** The protobuf-c header, copied into the build's own include dir (musl-gcc must not see /usr/include). */
export const PROTOBUF_C_HEADER = '/usr/include/protobuf-c/protobuf-c.h';
/** google/protobuf/empty.proto (libprotobuf-dev), imported by agent.proto. */
export const WELL_KNOWN_PROTOS = '/usr/include';

export const AGENT_CFLAGS = [
  '-std=c11',
  '-Os',
  '-static',
  '-s',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-fno-ident',
  '-ffunction-sections',
  '-fdata-sections',
  '-Wl,--gc-sections',
  '-Wl,--build-id=sha1',
  '-Wl,--hash-style=gnu',
];

export interface AgentSources {
  /** Paths under agent/ (src/*.c, src/*.h, proto/*.proto), sorted. */
  files: string[];
  /** sha256 over names and contents. */
  hash: string;
  /** The bytes hashed: builds compile a copy of exactly these. */
  contents?: Record<string, Buffer>;
}

async function listSources(dir: string, sub: string, pattern: RegExp): Promise<string[]> {
  const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
  return names.filter((f) => pattern.test(f)).map((f) => `${sub}/${f}`);
}

/** The agent's sources: agent/src (C) and agent/proto (the protocol it is generated from). */
export async function readAgentSources(dir = agentDir()): Promise<AgentSources> {
  const files = [...(await listSources(dir, 'src', /\.[ch]$/)), ...(await listSources(dir, 'proto', /\.proto$/))].sort();
  if (!files.some((f) => f.endsWith('.c')) || !files.some((f) => f.endsWith('.proto'))) {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `no agent sources in ${dir} (src/*.c and proto/*.proto)`,
      'reinstall osbuilder: agent/src and agent/proto are part of the package',
    );
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
  arch: Arch;
  engine: AgentEngine;
  /** The compiler to run (native: chosen by chooseCompiler; container: musl-gcc or the cross gcc). */
  compiler: string;
  /** Cross builds: link against the target's musl (musl-dev:<arch>) instead of static glibc. */
  crossMusl?: boolean;
  sources: AgentSources;
  /** Holds src/ and proto/ (a snapshot of the sources); the build writes inc/, gen/ and out/ there. */
  workDir: string;
  mirror?: string;
}

export interface Command {
  cmd: string;
  args: string[];
}

export interface AgentBuildPlan {
  arch: Arch;
  engine: AgentEngine;
  compiler: string;
  libc: AgentLibc;
  version: string;
  cflags: string[];
  /** Written into the work dir before the steps run (name → content). */
  files: Record<string, string>;
  /** Run in order (on the host, or each in the builder container): header, protoc-c, compiler. */
  steps: Command[];
  /** Where the binary appears (a host path). */
  output: string;
  /** Container builds: the builder image and how it is made locally (no registry needed). */
  builder?: { ref: string; packages: string[]; bootstrap: Command };
  /** Container builds: how each step runs (argv replaced per step). */
  run?: RunSpec;
}

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';

/** The three steps, with `w` the work dir as the compiler sees it. */
function buildSteps(input: AgentBuildInput, w: string, cflags: string[]): Command[] {
  const protos = input.sources.files.filter((f) => f.endsWith('.proto')).map((f) => f.slice('proto/'.length));
  const genC = ['google/protobuf/empty.pb-c.c', ...protos.map((p) => p.replace(/\.proto$/, '.pb-c.c'))];
  const cFiles = input.sources.files.filter((f) => f.endsWith('.c'));
  return [
    { cmd: 'install', args: ['-D', '-m', '0644', PROTOBUF_C_HEADER, `${w}/inc/protobuf-c/protobuf-c.h`] },
    { cmd: 'protoc-c', args: [`--c_out=${w}/gen`, '-I', `${w}/proto`, '-I', WELL_KNOWN_PROTOS, 'google/protobuf/empty.proto', ...protos] },
    {
      cmd: input.compiler,
      args: [
        ...cflags,
        '-I',
        `${w}/inc`,
        '-I',
        `${w}/gen`,
        '-I',
        `${w}/gen/google/protobuf`,
        '-o',
        `${w}/out/kata-agent`,
        ...cFiles.map((f) => `${w}/${f}`),
        ...genC.map((f) => `${w}/gen/${f}`),
        protobufCLibrary(input.arch),
      ],
    },
  ];
}

/** Pure: the commands that build the agent. */
export function planAgentBuild(input: AgentBuildInput): AgentBuildPlan {
  const version = agentVersion(input.sources.hash);
  const inContainer = input.engine !== 'native';
  const work = input.workDir.replace(/\/$/, '');
  const w = inContainer ? '/work' : work;
  const muslArch = input.crossMusl && isMuslArch(input.arch) ? input.arch : undefined;
  const cflags = [...AGENT_CFLAGS, ...(muslArch ? [`-specs=${w}/musl.specs`] : []), `-ffile-prefix-map=${w}=agent`, `-DAGENT_VERSION="${version}"`];
  const libc: AgentLibc = muslArch || input.compiler === 'musl-gcc' ? 'musl' : 'glibc';
  const files: Record<string, string> = muslArch ? { 'musl.specs': muslSpecs(muslArch) } : {};
  const plan: AgentBuildPlan = {
    arch: input.arch,
    engine: input.engine,
    compiler: input.compiler,
    libc,
    version,
    cflags,
    files,
    steps: buildSteps(input, w, cflags),
    output: `${work}/out/kata-agent`,
  };
  if (inContainer) {
    // The builder runs on the host's arch; other arches use Debian's cross gcc.
    const packages = compilerPackages(input.arch, hostArch());
    const ref = `osbuilder-agent-builder:${sha256(packages.join(',')).slice(0, 12)}`;
    const multiarch = input.arch === hostArch() ? [] : [`--architectures=${ARCH_FACTS[hostArch()].debArch},${ARCH_FACTS[input.arch].debArch}`];
    plan.builder = {
      ref,
      packages,
      bootstrap: {
        cmd: 'mmdebstrap',
        args: [
          '--mode=root',
          '--variant=minbase',
          ...multiarch,
          `--include=${packages.join(',')}`,
          '--aptopt=Acquire::Languages "none"',
          'bookworm',
          '-',
          input.mirror ?? DEBIAN_MIRROR,
        ],
      },
    };
    plan.run = {
      image: ref,
      name: `osbuilder-agent-build-${process.pid}-${Date.now().toString(36)}`,
      argv: [],
      mounts: [{ host: work, container: '/work' }],
      labels: { 'io.osbuilder.stage': 'agent' },
    };
  }
  return plan;
}

export interface BuildAgentOptions {
  /** Where the binary goes; written atomically. */
  output: string;
  engine?: AgentEngine;
  arch?: Arch;
  /** Debian mirror for making the builder image (container engines). */
  mirror?: string;
}

export interface AgentBuildResult {
  path: string;
  arch: Arch;
  engine: AgentEngine;
  compiler: string;
  libc: AgentLibc;
  version: string;
  sha256: string;
  size: number;
  sourceHash: string;
  /** True when the binary came from the build cache. */
  cached: boolean;
}

async function packageVersion(pkg: string): Promise<string> {
  const r = await start('dpkg-query', ['-W', '-f=${Version}', pkg], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).trim() : 'unknown';
}

/** What the native toolchain is: the compiler's version, musl's, protobuf-c's. */
/** The identity, remembered while the compiler binary and dpkg's database keep their stamps (no probe on a warm build). */
async function toolchainIdentity(cmd: string, arch: Arch, crossMusl: boolean): Promise<string> {
  const binary = (await which(cmd)) ?? cmd;
  return memoByFiles('toolchain', `${binary} ${arch} ${crossMusl}`, [binary, DPKG_STATUS], () => probeToolchain(cmd, arch, crossMusl));
}

const DPKG_STATUS = '/var/lib/dpkg/status';

async function probeToolchain(cmd: string, arch: Arch, crossMusl: boolean): Promise<string> {
  // musl-gcc wraps gcc; the musl version matters too. The probes run at once.
  const withMusl = crossMusl || cmd === 'musl-gcc';
  const [r, musl, compiler, lib] = await Promise.all([
    start(cmd, ['--version'], { reject: false }),
    withMusl ? packageVersion(`musl-dev:${ARCH_FACTS[arch].debArch}`) : undefined,
    packageVersion('protobuf-c-compiler'),
    packageVersion('libprotobuf-c-dev'),
  ]);
  const first = String(r.stdout).split('\n')[0] ?? '';
  return `${first}${withMusl ? ` musl ${musl}` : ''} protobuf-c ${compiler}/${lib}`;
}

const COMPILE_HINT = 'the agent sources must compile cleanly; rerun with --debug to see the compiler output';

async function ensureBuilder(engine: ContainerEngine, builder: NonNullable<AgentBuildPlan['builder']>): Promise<void> {
  if (await engine.imageId(builder.ref)) return;
  if (!(await haveTool('mmdebstrap'))) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      'mmdebstrap is not installed (it makes the agent builder image locally)',
      'apt-get install mmdebstrap, or use --engine native',
    );
  }
  await step(`make builder image ${builder.ref} (mmdebstrap | ${engine.kind} import)`, () =>
    engine.importFrom(builder.bootstrap, builder.ref, 'check that the Debian mirror is reachable (--mirror), or use --engine native'),
  );
}

/** Runs a plan's steps on the host or in the builder; the binary appears at plan.output. */
async function executePlan(plan: AgentBuildPlan, workDir: string): Promise<void> {
  for (const [name, text] of Object.entries(plan.files)) await writeFile(join(workDir, name), text);
  if (plan.engine === 'native') {
    for (const s of plan.steps) await run(s.cmd, s.args, { hint: COMPILE_HINT });
    return;
  }
  const engine = new ContainerEngine(plan.engine);
  await engine.check();
  await ensureBuilder(engine, plan.builder!);
  for (const [i, s] of plan.steps.entries())
    await engine.run({ ...plan.run!, name: `${plan.run!.name}-${i}`, argv: [s.cmd, ...s.args] }, { hint: COMPILE_HINT });
}

const SETUP_HINT = (arch: Arch, native: Arch) =>
  arch === native
    ? `apt-get install ${compilerPackages(arch, native).join(' ')}`
    : `dpkg --add-architecture ${ARCH_FACTS[arch].debArch} && apt-get update && apt-get install ${compilerPackages(arch, native).join(' ')}, or use --engine docker`;

interface Compiler {
  compiler: string;
  crossMusl: boolean;
}

/** The compiler for `arch`; cross builds use musl where musl-dev:<arch> is there (in a builder: always). */
async function resolveCompiler(arch: Arch, engine: AgentEngine): Promise<Compiler> {
  const native = hostArch();
  if (engine !== 'native')
    return arch === native
      ? { compiler: isMuslArch(arch) ? 'musl-gcc' : 'gcc', crossMusl: false }
      : { compiler: `${ARCH_FACTS[arch].triplet}-gcc`, crossMusl: isMuslArch(arch) };
  const seen = new Map<string, boolean>();
  for (const c of ['musl-gcc', 'gcc', `${ARCH_FACTS[arch].triplet}-gcc`]) seen.set(c, await haveTool(c));
  const cc = chooseCompiler(arch, native, (c) => seen.get(c) ?? false);
  if (!cc) throw new OsbuilderError('TOOL_MISSING', `no C compiler that can build a static agent for ${arch} on this ${native} host`, SETUP_HINT(arch, native));
  const missing = [
    ...((await haveTool('protoc-c')) ? [] : ['protoc-c']),
    ...[PROTOBUF_C_HEADER, protobufCLibrary(arch), `${WELL_KNOWN_PROTOS}/google/protobuf/empty.proto`].filter((f) => !existsSync(f)),
  ];
  if (missing.length)
    throw new OsbuilderError('TOOL_MISSING', `the agent's protocol code needs protobuf-c: missing ${missing.join(', ')}`, SETUP_HINT(arch, native));
  return { compiler: cc, crossMusl: arch !== native && isMuslArch(arch) && muslInstalled(arch) };
}

/** Builds (or reuses from the cache) the agent and writes it to `output`. */
export async function buildAgent(opts: BuildAgentOptions): Promise<AgentBuildResult> {
  await checkOutputPath(opts.output, { flag: '-o', name: 'kata-agent' });
  const entry = await cachedAgent(opts);
  return atomicOutput(opts.output, async (tmp) => {
    await copyFile(join(entry.dir, 'kata-agent'), tmp);
    await chmod(tmp, 0o755);
    return { ...entry.result, path: opts.output };
  });
}

/** osbuilder's own agent for `arch`, built into the cache when missing; returns the cached path. */
export async function defaultAgentBinary(opts: { arch?: Arch; engine?: AgentEngine } = {}): Promise<AgentBuildResult> {
  const entry = await cachedAgent(opts);
  return { ...entry.result, path: join(entry.dir, 'kata-agent') };
}

/** A work dir holding a snapshot of the hashed sources (src/, proto/) and empty gen/ and out/. */
async function snapshotSources(sources: AgentSources): Promise<string> {
  const work = join(tmpdir(), `osbuilder-agent-${process.pid}-${Date.now().toString(36)}`);
  for (const sub of ['src', 'proto', 'gen', 'out']) await mkdir(join(work, sub), { recursive: true });
  for (const f of sources.files) await writeFile(join(work, f), sources.contents![f]!);
  return work;
}

async function cachedAgent(opts: { arch?: Arch; engine?: AgentEngine; mirror?: string }): Promise<{ dir: string; result: AgentBuildResult }> {
  const arch = opts.arch ?? hostArch();
  const engine = opts.engine ?? 'native';
  const sources = await readAgentSources();
  const { compiler, crossMusl } = await resolveCompiler(arch, engine);
  // Container builds are keyed by their builder's package set; native ones by the toolchain found.
  const identity = engine === 'native' ? await toolchainIdentity(compiler, arch, crossMusl) : `container ${compilerPackages(arch, hostArch()).join(',')}`;
  const probe = planAgentBuild({ arch, engine, compiler, crossMusl, sources, workDir: '/work' });
  const inputs: CacheInputs = {
    sourceHash: sources.hash,
    arch,
    engine: engine === 'native' ? 'native' : 'container',
    compiler,
    libc: probe.libc,
    identity,
    cflags: probe.cflags.filter((f) => !f.startsWith('-ffile-prefix-map')),
    version: probe.version,
  };
  const key = cacheKey(inputs);
  const cache = new BuildCache();
  const { entry, cached } = await cache.obtain<AgentBuildResult>('agent', key, inputs, (dir) =>
    step(`build agent for ${arch} (${compiler}, ${probe.libc}${engine === 'native' ? '' : ` in ${engine}`})`, async () => {
      // A snapshot of the hashed sources, so the entry matches its key even if agent/ changes meanwhile.
      const work = await snapshotSources(sources);
      try {
        const plan = planAgentBuild({ arch, engine, compiler, crossMusl, sources, workDir: work, ...(opts.mirror ? { mirror: opts.mirror } : {}) });
        await executePlan(plan, work);
        const st = await stat(plan.output).catch(() => undefined);
        if (!st?.isFile() || st.size === 0)
          throw new OsbuilderError('VERIFY_FAILED', 'the compiler produced no agent binary', 'rerun with --debug to see the compiler output');
        await verifyAgentBinary(plan.output, arch);
        await copyFile(plan.output, join(dir, 'kata-agent'));
        await chmod(join(dir, 'kata-agent'), 0o755);
        return {
          path: join(dir, 'kata-agent'),
          arch,
          engine,
          compiler,
          libc: plan.libc,
          version: probe.version,
          sha256: await sha256File(plan.output),
          size: st.size,
          sourceHash: sources.hash,
          cached: false,
        };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    }),
  );
  return { dir: entry.dir, result: { ...entry.meta, cached } };
}

/** The binary is a static ELF executable for `arch` (no PT_INTERP). */
export async function verifyAgentBinary(path: string, arch: Arch): Promise<void> {
  const b = await readFile(path);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new OsbuilderError('VERIFY_FAILED', `${path} is not an ELF file`, 'rebuild the agent');
  const le = b[5] === 1;
  const machine = le ? b.readUInt16LE(18) : b.readUInt16BE(18);
  if (machine !== ARCH_FACTS[arch].elfMachine)
    throw new OsbuilderError('VERIFY_FAILED', `${path} is built for ELF machine ${machine}, not ${arch}`, 'rebuild the agent for the right arch');
  const is64 = b[4] === 2;
  const phoff = Number(is64 ? (le ? b.readBigUInt64LE(32) : b.readBigUInt64BE(32)) : le ? b.readUInt32LE(28) : b.readUInt32BE(28));
  const phentsize = le ? b.readUInt16LE(is64 ? 54 : 42) : b.readUInt16BE(is64 ? 54 : 42);
  const phnum = le ? b.readUInt16LE(is64 ? 56 : 44) : b.readUInt16BE(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) break;
    const type = le ? b.readUInt32LE(off) : b.readUInt32BE(off);
    if (type === 3)
      throw new OsbuilderError(
        'VERIFY_FAILED',
        `${path} is dynamically linked (has PT_INTERP)`,
        'the agent must be static: it runs before any libc is known to exist',
      );
  }
}
