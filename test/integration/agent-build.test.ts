/** `osbuilder agent build`: a static agent, cached by source hash, reproducible; docker gives the same bytes. */
import { describe, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { runCli } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { sha256File } from '../../core/hash.js';
import { startHostAgent } from '../support/agent.js';
import { AgentService, RpcError, SERVING_STATUS, defaultSpec } from '../../runtime/index.js';
import type { AgentBuildResult } from '../../agent/index.js';

describe('osbuilder agent build', () => {
  it('writes a static ELF agent, reuses the cache, reports its version', async () => {
    const dir = await makeTempDir('osb-agent-build-');
    const out = join(dir, 'kata-agent');
    const r = await runCli<AgentBuildResult>(['agent', 'build', '-o', out, '--json']);
    expect(r.exitCode).toBe(0);
    expect(r.json).toMatchObject({ path: out, arch: 'x86_64', engine: 'native' });
    expect(r.json!.version).toMatch(/^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
    const st = await stat(out);
    expect(st.mode & 0o777).toBe(0o755);
    expect(await sha256File(out)).toBe(r.json!.sha256);
    const file = await execa('file', ['-b', out]);
    expect(file.stdout).toMatch(/ELF 64-bit LSB executable, x86-64.*statically linked/);
    expect(st.size).toBeLessThan(1024 * 1024);
    const v = await execa(out, ['--version']);
    expect(v.stdout).toBe(`kata-agent (osbuilder) ${r.json!.version}`);
    // Second build: from the cache, same bytes.
    const again = await runCli<AgentBuildResult>(['agent', 'build', '-o', join(dir, 'again'), '--json']);
    expect(again.json!.cached).toBe(true);
    expect(again.json!.sha256).toBe(r.json!.sha256);
    expect((await readFile(join(dir, 'again'))).equals(await readFile(out))).toBe(true);
  });

  it('builds the same bytes in the docker builder (made locally with mmdebstrap)', async () => {
    const dir = await makeTempDir('osb-agent-docker-');
    // A fresh build cache: both compilers really run.
    const env = { OSBUILDER_CACHE_DIR: join(dir, 'cache') };
    const native = await runCli<AgentBuildResult>(['agent', 'build', '-o', join(dir, 'native'), '--json'], { env });
    const docker = await runCli<AgentBuildResult>(['agent', 'build', '--engine', 'docker', '-o', join(dir, 'docker'), '--json'], { env, timeout: 15 * 60_000 });
    expect(docker.exitCode).toBe(0);
    expect(native.json!.cached).toBe(false);
    expect(docker.json).toMatchObject({ engine: 'docker', cached: false });
    expect(docker.json!.sha256).toBe(native.json!.sha256);
  });

  it("cross-compiles a static musl agent for aarch64 that serves Kata's protocol under qemu-aarch64", async () => {
    const dir = await makeTempDir('osb-agent-arm64-');
    const out = join(dir, 'kata-agent');
    const r = await runCli<AgentBuildResult>(['agent', 'build', '--arch', 'aarch64', '-o', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ arch: 'aarch64', compiler: 'aarch64-linux-gnu-gcc', libc: 'musl' });
    expect((await execa('file', ['-b', out])).stdout).toMatch(/ELF 64-bit LSB executable, ARM aarch64.*statically linked/);
    expect((await stat(out)).size).toBeLessThan(512 * 1024);
    expect((await execa('qemu-aarch64-static', [out, '--version'])).stdout).toBe(`kata-agent (osbuilder) ${r.json!.version}`);
    const agent = await startHostAgent([], { binary: out, emulator: 'qemu-aarch64-static' });
    try {
      const { client } = await agent.connect();
      expect(await client.check()).toBe(SERVING_STATUS.SERVING);
      expect(await client.version()).toEqual({ grpcVersion: '0.0.1', agentVersion: r.json!.version });
      const d = await client.call(AgentService.method.getGuestDetails, { memBlockSize: true, memHotplugProbe: true });
      expect(d.agentDetails?.version).toBe(r.json!.version);
      // qemu-user has no PR_SET_CHILD_SUBREAPER: the agent says so instead of starting what it cannot reap.
      const refused = await client
        .call(AgentService.method.createContainer, { containerId: 'c1', execId: 'c1', OCI: defaultSpec({ args: ['true'], hostname: 'x' }) })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(RpcError);
      expect((refused as RpcError).status.message).toMatch(/^this agent is not PID 1 and cannot become a child subreaper \(Invalid argument\)/);
      client.close();
    } finally {
      await agent.stop();
    }
  });

  it('refuses bad output paths and unknown arches, leaving nothing behind', async () => {
    const dir = await makeTempDir('osb-agent-bad-');
    let r = await runCli(['agent', 'build', '-o', join(dir, 'missing/kata-agent')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[OUTPUT_INVALID\]: output directory .*missing does not exist/m);
    r = await runCli(['agent', 'build', '-o', dir]);
    expect(r.stderr).toMatch(/^error\[OUTPUT_INVALID\]: output path .* is a directory/m);
    r = await runCli(['agent', 'build', '-o', join(dir, 'a'), '--arch', 'mips']);
    expect(r.stderr).toMatch(/^error\[UNSUPPORTED_ARCH\]: unknown architecture "mips"; supported: x86_64, aarch64, ppc64le, s390x/m);
    // Setup installs s390x's cross gcc (for its kernel config) but not its protobuf-c.
    const hasCross = (await execa('sh', ['-c', 'command -v s390x-linux-gnu-gcc'], { reject: false })).exitCode === 0;
    r = await runCli(['agent', 'build', '-o', join(dir, 'b'), '--arch', 's390x']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      hasCross
        ? /^error\[TOOL_MISSING\]: the agent's protocol code needs protobuf-c: missing \/usr\/lib\/s390x-linux-gnu\/libprotobuf-c\.a/m
        : /^error\[TOOL_MISSING\]: no C compiler that can build a static agent for s390x/m,
    );
    expect(r.stderr).toMatch(
      /hint: dpkg --add-architecture s390x && apt-get update && apt-get install gcc-s390x-linux-gnu libc6-dev-s390x-cross protobuf-c-compiler libprotobuf-dev libprotobuf-c-dev:s390x, or use --engine docker/,
    );
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual([]);
  });
});
