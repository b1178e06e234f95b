/** The agent build plan: header, protoc-c, compiler; the container variant; the source hash. */
import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AGENT_CFLAGS,
  agentDir,
  agentVersion,
  chooseCompiler,
  compilerPackages,
  planAgentBuild,
  readAgentSources,
  verifyAgentBinary,
} from '../../agent/index.js';

const sources = { files: ['proto/agent.proto', 'proto/health.proto', 'src/agent.h', 'src/main.c', 'src/util.c'], hash: 'ab'.repeat(32) };

describe('agent build plan', () => {
  it('native: the protobuf-c header, protoc-c from agent/proto, one static -Os compile with the runtime library', () => {
    const plan = planAgentBuild({ arch: 'x86_64', engine: 'native', compiler: 'musl-gcc', sources, workDir: '/tmp/w/' });
    expect(plan.output).toBe('/tmp/w/out/kata-agent');
    expect(plan.steps[0]).toEqual({ cmd: 'install', args: ['-D', '-m', '0644', '/usr/include/protobuf-c/protobuf-c.h', '/tmp/w/inc/protobuf-c/protobuf-c.h'] });
    expect(plan.steps[1]).toEqual({
      cmd: 'protoc-c',
      args: ['--c_out=/tmp/w/gen', '-I', '/tmp/w/proto', '-I', '/usr/include', 'google/protobuf/empty.proto', 'agent.proto', 'health.proto'],
    });
    expect(plan.steps[2]).toEqual({
      cmd: 'musl-gcc',
      args: [
        ...AGENT_CFLAGS,
        '-ffile-prefix-map=/tmp/w=agent',
        `-DAGENT_VERSION="${agentVersion(sources.hash)}"`,
        '-I',
        '/tmp/w/inc',
        '-I',
        '/tmp/w/gen',
        '-I',
        '/tmp/w/gen/google/protobuf',
        '-o',
        '/tmp/w/out/kata-agent',
        '/tmp/w/src/main.c',
        '/tmp/w/src/util.c',
        '/tmp/w/gen/google/protobuf/empty.pb-c.c',
        '/tmp/w/gen/agent.pb-c.c',
        '/tmp/w/gen/health.pb-c.c',
        '/usr/lib/x86_64-linux-gnu/libprotobuf-c.a',
      ],
    });
    expect(plan.cflags).toEqual(expect.arrayContaining(['-static', '-Os', '-Wall', '-Wextra', '-Werror']));
    expect(plan.builder).toBeUndefined();
    expect(agentVersion(sources.hash)).toMatch(/^\d+\.\d+\.\d+\+abababababab$/);
  });

  it('docker: a builder image made with mmdebstrap (no registry), the work dir mounted, the same steps inside', () => {
    const plan = planAgentBuild({ arch: 'x86_64', engine: 'docker', compiler: 'musl-gcc', sources, workDir: '/tmp/w', mirror: 'http://mirror.example/debian' });
    expect(plan.builder!.packages).toEqual(['gcc', 'libc6-dev', 'musl-tools', 'protobuf-c-compiler', 'libprotobuf-dev', 'libprotobuf-c-dev']);
    expect(plan.builder!.ref).toMatch(/^osbuilder-agent-builder:[0-9a-f]{12}$/);
    expect(plan.builder!.bootstrap).toEqual({
      cmd: 'mmdebstrap',
      args: [
        '--mode=root',
        '--variant=minbase',
        '--include=gcc,libc6-dev,musl-tools,protobuf-c-compiler,libprotobuf-dev,libprotobuf-c-dev',
        '--aptopt=Acquire::Languages "none"',
        'bookworm',
        '-',
        'http://mirror.example/debian',
      ],
    });
    expect(plan.run).toMatchObject({ image: plan.builder!.ref, mounts: [{ host: '/tmp/w', container: '/work' }] });
    expect(plan.steps[2]!.args).toContain('-ffile-prefix-map=/work=agent');
    expect(plan.steps[2]!.args).toContain('/work/src/main.c');
    expect(plan.output).toBe('/tmp/w/out/kata-agent');
  });

  it('prefers musl, then gcc; cross arches need the cross gcc and the target arch protobuf-c', () => {
    expect(chooseCompiler('x86_64', 'x86_64', () => true)).toBe('musl-gcc');
    expect(chooseCompiler('x86_64', 'x86_64', (c) => c === 'gcc')).toBe('gcc');
    expect(chooseCompiler('aarch64', 'x86_64', (c) => c === 'gcc')).toBeUndefined();
    expect(chooseCompiler('aarch64', 'x86_64', (c) => c === 'aarch64-linux-gnu-gcc')).toBe('aarch64-linux-gnu-gcc');
    expect(compilerPackages('aarch64', 'x86_64')).toEqual([
      'gcc-aarch64-linux-gnu',
      'libc6-dev-arm64-cross',
      'musl-dev:arm64',
      'protobuf-c-compiler',
      'libprotobuf-dev',
      'libprotobuf-c-dev:arm64',
    ]);
    expect(compilerPackages('ppc64le', 'x86_64')).toEqual([
      'gcc-powerpc64le-linux-gnu',
      'libc6-dev-ppc64el-cross',
      'protobuf-c-compiler',
      'libprotobuf-dev',
      'libprotobuf-c-dev:ppc64el',
    ]);
    expect(compilerPackages('s390x', 's390x')).toEqual(['gcc', 'libc6-dev', 'protobuf-c-compiler', 'libprotobuf-dev', 'libprotobuf-c-dev']);
    const cross = planAgentBuild({ arch: 'aarch64', engine: 'docker', compiler: 'aarch64-linux-gnu-gcc', sources, workDir: '/tmp/w' });
    expect(cross.builder!.bootstrap.args).toContain('--architectures=amd64,arm64');
    expect(cross.steps[2]!.args.at(-1)).toBe('/usr/lib/aarch64-linux-gnu/libprotobuf-c.a');
    expect([cross.libc, cross.files]).toEqual(['glibc', {}]);
  });

  it('cross musl: the cross gcc with a specs file for musl-dev:<arch>, written into the work dir', () => {
    const plan = planAgentBuild({ arch: 'aarch64', engine: 'native', compiler: 'aarch64-linux-gnu-gcc', crossMusl: true, sources, workDir: '/tmp/w' });
    expect(plan.libc).toBe('musl');
    expect(plan.steps[2]!.cmd).toBe('aarch64-linux-gnu-gcc');
    expect(plan.cflags).toContain('-specs=/tmp/w/musl.specs');
    const specs = plan.files['musl.specs']!;
    expect(specs).toContain('-nostdinc -isystem /usr/include/aarch64-linux-musl -isystem include%s');
    expect(specs).toMatch(/\*startfile:\n\/usr\/lib\/aarch64-linux-musl\/crt1\.o \/usr\/lib\/aarch64-linux-musl\/crti\.o crtbeginT\.o%s\n/);
    expect(specs).toContain('-L/usr/lib/aarch64-linux-musl');
    expect(specs).not.toContain('x86_64');
    // No musl for arches Debian has no musl-dev for: static glibc.
    const s390 = planAgentBuild({ arch: 's390x', engine: 'native', compiler: 's390x-linux-gnu-gcc', crossMusl: true, sources, workDir: '/tmp/w' });
    expect([s390.libc, s390.files, s390.cflags.some((f) => f.startsWith('-specs'))]).toEqual(['glibc', {}, false]);
  });

  it('hashes names and contents of the C sources and the .proto files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-agent-src-'));
    await mkdir(join(dir, 'src'));
    await mkdir(join(dir, 'proto'));
    await writeFile(join(dir, 'src/a.c'), 'int main(void){return 0;}\n');
    await writeFile(join(dir, 'src/notes.txt'), 'ignored');
    await writeFile(join(dir, 'proto/x.proto'), 'syntax = "proto3";\n');
    const one = await readAgentSources(dir);
    expect(one.files).toEqual(['proto/x.proto', 'src/a.c']);
    await writeFile(join(dir, 'proto/x.proto'), 'syntax = "proto3"; package y;\n');
    expect((await readAgentSources(dir)).hash).not.toBe(one.hash);
    await expect(readAgentSources(join(dir, 'none'))).rejects.toThrow(/no agent sources/);
    const real = await readAgentSources(agentDir());
    expect(real.files).toEqual(
      expect.arrayContaining(['src/main.c', 'src/dispatch.c', 'src/init.c', 'proto/agent.proto', 'proto/oci.proto', 'proto/ttrpc.proto']),
    );
  });

  it('verifies the output: a static x86_64 binary passes for x86_64 and is refused for aarch64, naming its ELF machine', async () => {
    await expect(verifyAgentBinary('/bin/busybox', 'x86_64')).resolves.toBeUndefined();
    await expect(verifyAgentBinary('/bin/busybox', 'aarch64')).rejects.toMatchObject({
      code: 'VERIFY_FAILED',
      message: '/bin/busybox is built for ELF machine 62, not aarch64',
    });
    await expect(verifyAgentBinary('/bin/ls', 'x86_64')).rejects.toThrow(/dynamically linked/);
  });
});
