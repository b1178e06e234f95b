/** `osbuilder agent build`: a static agent, cached by source hash, reproducible; docker gives the same bytes. */
import { describe, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { runCli } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { sha256File } from '../../core/hash.js';

describe('osbuilder agent build', () => {
  it('writes a static ELF agent, reuses the cache, reports its version', async () => {
    const dir = await makeTempDir('osb-agent-build-');
    const out = join(dir, 'kata-agent');
    const r = await runCli(['agent', 'build', '-o', out, '--json']);
    expect(r.exitCode).toBe(0);
    expect(r.json).toMatchObject({ path: out, arch: 'x86_64', engine: 'native' });
    expect(r.json.version).toMatch(/^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
    const st = await stat(out);
    expect(st.mode & 0o777).toBe(0o755);
    expect(await sha256File(out)).toBe(r.json.sha256);
    const file = await execa('file', ['-b', out]);
    expect(file.stdout).toMatch(/ELF 64-bit LSB executable, x86-64.*statically linked/);
    expect(st.size).toBeLessThan(1024 * 1024);
    const v = await execa(out, ['--version']);
    expect(v.stdout).toBe(`kata-agent (osbuilder) ${r.json.version}`);
    // Second build: from the cache, same bytes.
    const again = await runCli(['agent', 'build', '-o', join(dir, 'again'), '--json']);
    expect(again.json.cached).toBe(true);
    expect(again.json.sha256).toBe(r.json.sha256);
    expect((await readFile(join(dir, 'again'))).equals(await readFile(out))).toBe(true);
  });

  it('builds the same bytes in the docker builder (made locally with mmdebstrap)', async () => {
    const dir = await makeTempDir('osb-agent-docker-');
    // A fresh build cache: both compilers really run.
    const env = { OSBUILDER_CACHE_DIR: join(dir, 'cache') };
    const native = await runCli(['agent', 'build', '-o', join(dir, 'native'), '--json'], { env });
    const docker = await runCli(['agent', 'build', '--engine', 'docker', '-o', join(dir, 'docker'), '--json'], { env, timeout: 15 * 60_000 });
    expect(docker.exitCode).toBe(0);
    expect(native.json.cached).toBe(false);
    expect(docker.json).toMatchObject({ engine: 'docker', cached: false });
    expect(docker.json.sha256).toBe(native.json.sha256);
  });

  it('refuses bad output paths and unknown arches, leaving nothing behind', async () => {
    const dir = await makeTempDir('osb-agent-bad-');
    let r = await runCli(['agent', 'build', '-o', join(dir, 'missing/kata-agent')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[OUTPUT_INVALID\]: output directory .*missing does not exist/m);
    r = await runCli(['agent', 'build', '-o', dir]);
    expect(r.stderr).toMatch(/^error\[OUTPUT_INVALID\]: output path .* is a directory/m);
    r = await runCli(['agent', 'build', '-o', join(dir, 'a'), '--arch', 'mips']);
    expect(r.stderr).toMatch(/^error\[UNSUPPORTED_ARCH\]: unknown architecture mips/m);
    const hasCross = (await execa('sh', ['-c', 'command -v s390x-linux-gnu-gcc'], { reject: false })).exitCode === 0;
    if (!hasCross) {
      r = await runCli(['agent', 'build', '-o', join(dir, 'b'), '--arch', 's390x']);
      expect(r.stderr).toMatch(/^error\[TOOL_MISSING\]: no C compiler that can build a static agent for s390x/m);
      expect(r.stderr).toMatch(/hint: apt-get install gcc-s390x-linux-gnu libc6-dev-s390x-cross, or use --engine docker/);
    }
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual([]);
  });
});
