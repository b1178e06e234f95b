/** The agent build plan: compiler choice, flags, the container variant; the source hash. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_CFLAGS, agentVersion, chooseCompiler, compilerPackages, planAgentBuild, readAgentSources, agentSourceDir } from '../../agent/index.js';

const sources = { files: ['agent.h', 'exec.c', 'main.c', 'pb.c', 'pb.h'], hash: 'ab'.repeat(32) };

describe('agent build plan', () => {
  it('native: one static -Os compile of the .c files, version and prefix map baked in', () => {
    const plan = planAgentBuild({ arch: 'x86_64', engine: 'native', compiler: 'musl-gcc', sources, srcDir: '/opt/osb/agent/src/', output: '/tmp/x/kata-agent' });
    expect(plan.compile.cmd).toBe('musl-gcc');
    expect(plan.compile.args).toEqual([
      ...AGENT_CFLAGS,
      '-ffile-prefix-map=/opt/osb/agent/src=agent/src',
      `-DAGENT_VERSION="${agentVersion(sources.hash)}"`,
      '-o',
      '/tmp/x/kata-agent',
      '/opt/osb/agent/src/exec.c',
      '/opt/osb/agent/src/main.c',
      '/opt/osb/agent/src/pb.c',
    ]);
    expect(plan.compile.args).toEqual(expect.arrayContaining(['-static', '-Os']));
    expect(plan.builder).toBeUndefined();
    expect(agentVersion(sources.hash)).toMatch(/^\d+\.\d+\.\d+\+abababababab$/);
  });

  it('docker: a builder image made with mmdebstrap (no registry), sources read-only, no privileges', () => {
    const plan = planAgentBuild({ arch: 'x86_64', engine: 'docker', compiler: 'musl-gcc', sources, srcDir: '/opt/osb/agent/src', output: '/tmp/w/kata-agent', mirror: 'http://mirror.example/debian' });
    expect(plan.builder!.packages).toEqual(['gcc', 'libc6-dev', 'musl-tools']);
    expect(plan.builder!.ref).toMatch(/^osbuilder-agent-builder:[0-9a-f]{12}$/);
    expect(plan.builder!.bootstrap).toEqual({
      cmd: 'mmdebstrap',
      args: ['--mode=root', '--variant=minbase', '--include=gcc,libc6-dev,musl-tools', '--aptopt=Acquire::Languages "none"', 'bookworm', '-', 'http://mirror.example/debian'],
    });
    const run = plan.run!;
    expect(run.image).toBe(plan.builder!.ref);
    expect(run.mounts).toEqual([
      { host: '/opt/osb/agent/src', container: '/src', readonly: true },
      { host: '/tmp/w', container: '/out' },
    ]);
    expect(run.argv.slice(0, 1)).toEqual(['musl-gcc']);
    expect(run.argv).toContain('-ffile-prefix-map=/src=agent/src');
    expect(run.argv.slice(-5)).toEqual(['-o', '/out/kata-agent', '/src/exec.c', '/src/main.c', '/src/pb.c']);
  });

  it('prefers musl, then gcc; cross arches need the cross gcc', () => {
    expect(chooseCompiler('x86_64', 'x86_64', () => true)).toBe('musl-gcc');
    expect(chooseCompiler('x86_64', 'x86_64', (c) => c === 'gcc')).toBe('gcc');
    expect(chooseCompiler('aarch64', 'x86_64', (c) => c === 'gcc')).toBeUndefined();
    expect(chooseCompiler('aarch64', 'x86_64', (c) => c === 'aarch64-linux-gnu-gcc')).toBe('aarch64-linux-gnu-gcc');
    expect(compilerPackages('aarch64', 'x86_64')).toEqual(['gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross']);
    expect(compilerPackages('s390x', 's390x')).toEqual(['gcc', 'libc6-dev']);
  });

  it('hashes names and contents of the sources', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-agent-src-'));
    await writeFile(join(dir, 'a.c'), 'int main(void){return 0;}\n');
    await writeFile(join(dir, 'notes.txt'), 'ignored');
    const one = await readAgentSources(dir);
    expect(one.files).toEqual(['a.c']);
    await writeFile(join(dir, 'a.c'), 'int main(void){return 1;}\n');
    expect((await readAgentSources(dir)).hash).not.toBe(one.hash);
    await expect(readAgentSources(join(dir, 'none'))).rejects.toThrow();
    const real = await readAgentSources(agentSourceDir());
    expect(real.files).toEqual(expect.arrayContaining(['main.c', 'exec.c', 'init.c', 'pb.c']));
  });
});
