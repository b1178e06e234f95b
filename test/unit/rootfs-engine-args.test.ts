import { describe, expect, it } from 'vitest';
import { buildArgv, mountArg, runArgv } from '../../core/docker.js';
import { builderTag, planRootfs, resolveRootfsOptions } from '../../rootfs-builder/index.js';

describe('container engine argv', () => {
  it('run: no --privileged, no host devices, only the given mount, sorted env and labels', () => {
    const argv = runArgv({
      image: 'img',
      name: 'osbuilder-rootfs-1-0',
      argv: ['mmdebstrap', '--mode=root'],
      mounts: [{ host: '/out/.r.tmp-1', container: '/rootfs' }],
      env: { B: '2', A: '1' },
      labels: { 'org.osbuilder.build': '1' },
      ulimits: ['nofile=1024:1024'],
    });
    expect(argv).toEqual([
      'run', '--rm', '--name', 'osbuilder-rootfs-1-0',
      '--label', 'org.osbuilder.build=1',
      '--ulimit', 'nofile=1024:1024',
      '--mount', 'type=bind,source=/out/.r.tmp-1,target=/rootfs',
      '--env', 'A=1', '--env', 'B=2',
      'img', 'mmdebstrap', '--mode=root',
    ]);
    expect(argv.join(' ')).not.toMatch(/--privileged|--device|\/dev:|--cap-add|SYS_ADMIN/);
    expect(runArgv({ image: 'i', name: 'n', argv: [], input: 'x', platform: 'linux/arm64' })).toEqual(['run', '--rm', '--name', 'n', '-i', '--platform', 'linux/arm64', 'i']);
  });

  it('mounts refuse paths their CSV syntax would misread', () => {
    expect(mountArg({ host: '/a', container: '/b', readonly: true })).toBe('type=bind,source=/a,target=/b,readonly');
    expect(() => mountArg({ host: '/a,target=/etc', container: '/b' })).toThrow(/commas/);
  });

  it('build', () => {
    expect(buildArgv({ tag: 't', dockerfile: '/c/Dockerfile', context: '/c', buildArgs: { MIRROR: 'http://m' }, labels: { a: 'b' } })).toEqual([
      'build', '--force-rm', '-t', 't', '-f', '/c/Dockerfile', '--build-arg', 'MIRROR=http://m', '--label', 'a=b', '/c',
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
