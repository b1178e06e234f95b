import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildArgv, ContainerEngine, createArgv, dockerContext, mountArg, startArgv } from '../../core/docker.js';
import { builderTag, planRootfs, resolveRootfsOptions } from '../../rootfs-builder/index.js';

describe('container engine argv', () => {
  it('create: no --privileged, no host devices, only the given mount, sorted env and labels', () => {
    const argv = createArgv({
      image: 'img',
      name: 'osbuilder-rootfs-1-0',
      argv: ['mmdebstrap', '--mode=root'],
      mounts: [{ host: '/out/.r.tmp-1', container: '/rootfs' }],
      env: { B: '2', A: '1' },
      labels: { 'org.osbuilder.build': '1' },
      ulimits: ['nofile=1024:1024'],
    });
    expect(argv).toEqual([
      'create',
      '--rm',
      '--name',
      'osbuilder-rootfs-1-0',
      '--label',
      'org.osbuilder.build=1',
      '--ulimit',
      'nofile=1024:1024',
      '--mount',
      'type=bind,source=/out/.r.tmp-1,target=/rootfs',
      '--env',
      'A=1',
      '--env',
      'B=2',
      'img',
      'mmdebstrap',
      '--mode=root',
    ]);
    expect(argv.join(' ')).not.toMatch(/--privileged|--device|\/dev:|--cap-add|SYS_ADMIN/);
    expect(createArgv({ image: 'i', name: 'n', argv: [], input: 'x', platform: 'linux/arm64' })).toEqual([
      'create',
      '--rm',
      '--name',
      'n',
      '-i',
      '--platform',
      'linux/arm64',
      'i',
    ]);
  });

  it("start: attached, with stdin only when the container has input (its exit status is the container's)", () => {
    expect(startArgv({ name: 'n' })).toEqual(['start', '--attach', 'n']);
    expect(startArgv({ name: 'n', input: '' })).toEqual(['start', '--attach', '--interactive', 'n']);
  });

  it('mounts refuse paths their CSV syntax would misread', () => {
    expect(mountArg({ host: '/a', container: '/b', readonly: true })).toBe('type=bind,source=/a,target=/b,readonly');
    expect(() => mountArg({ host: '/a,target=/etc', container: '/b' })).toThrow(/commas/);
  });

  it('build', () => {
    expect(buildArgv({ tag: 't', dockerfile: '/c/Dockerfile', context: '/c', buildArgs: { MIRROR: 'http://m' }, labels: { a: 'b' } })).toEqual([
      'build',
      '--force-rm',
      '-t',
      't',
      '-f',
      '/c/Dockerfile',
      '--build-arg',
      'MIRROR=http://m',
      '--label',
      'a=b',
      '/c',
    ]);
  });

  it('the builder tag changes with the Dockerfile, the build args and the base image', () => {
    const p = planRootfs(resolveRootfsOptions({ distro: 'debian', output: '/o' }, 'x86_64'), { toolVersion: 't' });
    const m = planRootfs(resolveRootfsOptions({ distro: 'debian', output: '/o', mirror: 'http://m/debian' }, 'x86_64'), { toolVersion: 't' });
    const t = builderTag(p, 'sha256:aaa');
    expect(t).toMatch(/^osbuilder\/rootfs-builder-debian:bookworm-x86_64-[0-9a-f]{12}$/);
    expect(builderTag(p, 'sha256:aaa')).toBe(t);
    expect(builderTag(p, 'sha256:bbb')).not.toBe(t);
    expect(builderTag(m, 'sha256:aaa')).not.toBe(t);
  });
});

describe('is the engine local (shares our paths)?', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'CONTAINER_HOST']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('DOCKER_HOST: only the default sockets are local; tcp, ssh and other sockets are not', () => {
    const docker = new ContainerEngine('docker');
    for (const [host, local] of [
      ['unix:///var/run/docker.sock', true],
      ['unix:///run/docker.sock', true],
      ['unix:///tmp/x/docker.sock', false],
      ['tcp://10.0.0.2:2376', false],
      ['ssh://builder@ci', false],
    ] as const) {
      process.env.DOCKER_HOST = host;
      expect(docker.local, host).toBe(local);
    }
  });

  it('no DOCKER_HOST: the docker context decides (DOCKER_CONTEXT, else config.json currentContext)', async () => {
    delete process.env.DOCKER_HOST;
    const dir = await mkdtemp(join(tmpdir(), 'osb-dockercfg-'));
    try {
      process.env.DOCKER_CONFIG = dir;
      delete process.env.DOCKER_CONTEXT;
      expect(dockerContext()).toBe('default');
      expect(new ContainerEngine('docker').local).toBe(true);
      await writeFile(join(dir, 'config.json'), JSON.stringify({ currentContext: 'far' }));
      expect(new ContainerEngine('docker').local).toBe(false);
      process.env.DOCKER_CONTEXT = 'default';
      expect(new ContainerEngine('docker').local).toBe(true);
      await writeFile(join(dir, 'config.json'), '{not json');
      delete process.env.DOCKER_CONTEXT;
      expect(dockerContext()).toBe('default');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('podman: CONTAINER_HOST makes it remote', () => {
    delete process.env.CONTAINER_HOST;
    expect(new ContainerEngine('podman').local).toBe(true);
    process.env.CONTAINER_HOST = 'ssh://core@vm/run/podman/podman.sock';
    expect(new ContainerEngine('podman').local).toBe(false);
  });
});
