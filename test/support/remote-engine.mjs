/**
 * A second Docker engine for the remote-engine test and the rootfs-remote bench:
 * dockerd in a container with the rights it needs, its image made here (the
 * local Debian base + Debian's docker.io, cached by tag), its data-root on its
 * own volume, its socket in a host temp dir. Its filesystem is not ours: a
 * build through it shares no path with the host. Everything is named and
 * labelled after the calling process and its role, and removed by stop().
 * Plain JS over dist/ (`npm run build` first), so the bench can use it too.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const debianMirror = process.env.OSBUILDER_TEST_MIRROR ?? 'http://deb.debian.org/debian';

/**
 * Writable cgroups for the inner dockerd. v2: remount rw, move ourselves out of
 * the root cgroup so controllers can be delegated (as docker:dind does). v1:
 * the container's hierarchies are read-only without --privileged; mount its
 * own (its cgroup namespace's) writable in their place.
 */
const ENTRYPOINT = `#!/bin/sh
set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mount -o remount,rw /sys/fs/cgroup || :
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control || :
else
  grep ' /sys/fs/cgroup/[^ ]* cgroup ' /proc/self/mounts > /run/cgroups || :
  while read -r _ dir _ opts _; do
    umount "$dir" && mount -t cgroup -o "$(echo "$opts" | sed 's/^ro,/rw,/')" cgroup "$dir"
  done < /run/cgroups
fi
exec "$@"
`;

/**
 * What dockerd needs, without --privileged (which demands every capability,
 * and some hosts withhold one: this one CAP_SYS_RESOURCE): the others, no
 * seccomp or AppArmor confinement, all devices, its own cgroup namespace.
 */
const ENGINE_RIGHTS = [
  '--cap-add',
  'ALL',
  '--cap-drop',
  'SYS_RESOURCE',
  '--security-opt',
  'seccomp=unconfined',
  '--security-opt',
  'apparmor=unconfined',
  '--security-opt',
  'systempaths=unconfined',
  '--device-cgroup-rule',
  'a *:* rwm',
  '--cgroupns',
  'private',
];

function dockerfile(base) {
  return [
    `FROM ${base}`,
    `RUN printf 'deb ${debianMirror} bookworm main\\n' > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/debian.sources \\`,
    ' && apt-get update && apt-get install -y --no-install-recommends docker.io iptables ca-certificates \\',
    ' && apt-get clean && rm -rf /var/lib/apt/lists/*',
    'COPY entrypoint.sh /usr/local/bin/entrypoint.sh',
    'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]',
    '',
  ].join('\n');
}

/** The dockerd image, built once per base image and Dockerfile text (kept between runs, like the test cache). */
export async function dockerdImage() {
  // dist/ at call time: the suites rebuild it in their beforeAll.
  const { ensureDebianBase } = await import('../../dist/rootfs-builder/index.js');
  const base = await ensureDebianBase({ mirror: debianMirror });
  const text = dockerfile(base.ref);
  const tag = `osbuilder-test/dockerd:bookworm-${createHash('sha256').update(`${text}\n${ENTRYPOINT}\n${base.id}`).digest('hex').slice(0, 12)}`;
  if ((await execa('docker', ['image', 'inspect', tag], { reject: false })).exitCode === 0) return tag;
  const ctx = await mkdtemp(join(tmpdir(), 'osb-dockerd-ctx-'));
  try {
    await writeFile(join(ctx, 'Dockerfile'), text);
    await writeFile(join(ctx, 'entrypoint.sh'), ENTRYPOINT);
    await chmod(join(ctx, 'entrypoint.sh'), 0o755);
    await execa('docker', ['build', '--force-rm', '--label', 'org.osbuilder.test=dockerd-image', '-t', tag, ctx]);
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
  return tag;
}

/** Resolves once dockerd logs that its API listens; rejects with its log when the container ends first. */
async function waitForApi(container) {
  const logs = execa('docker', ['logs', '-f', container], { reject: false, all: true, buffer: false });
  let seen = '';
  try {
    await new Promise((resolve, reject) => {
      logs.all.on('data', (chunk) => {
        seen += chunk.toString();
        if (/API listen on \/run\/osb\/docker\.sock/.test(seen)) resolve();
      });
      void logs.then(() => reject(new Error(`dockerd in ${container} ended before its API listened:\n${seen.slice(-4000)}`)));
    });
  } finally {
    logs.kill('SIGTERM');
    await logs;
  }
}

/**
 * Starts dockerd in its container. `role` ('test' or 'bench') names it.
 * Returns { host: DOCKER_HOST for it (unix://<host temp dir>/docker.sock), container, volume, stop() }.
 */
export async function startRemoteEngine(role = 'test') {
  const image = await dockerdImage();
  const name = `osbuilder-${role}-dockerd-${process.pid}`;
  const volume = `${name}-data`;
  const label = `org.osbuilder.${role}=remote-engine-${process.pid}`;
  const socketDir = await mkdtemp(join(tmpdir(), 'osb-dockerd-sock-'));
  const stop = async () => {
    await execa('docker', ['rm', '-f', '-v', name], { reject: false });
    await execa('docker', ['volume', 'rm', '-f', volume], { reject: false });
    await rm(socketDir, { recursive: true, force: true });
  };
  try {
    await execa('docker', ['volume', 'create', '--label', label, volume]);
    await execa('docker', [
      'run',
      '-d',
      ...ENGINE_RIGHTS,
      '--name',
      name,
      '--label',
      label,
      '--mount',
      `type=volume,source=${volume},target=/var/lib/docker`,
      '--mount',
      `type=bind,source=${socketDir},target=/run/osb`,
      image,
      'dockerd',
      '--host',
      'unix:///run/osb/docker.sock',
      '--data-root',
      '/var/lib/docker',
      '--storage-driver',
      'overlay2',
    ]);
    await waitForApi(name);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `unix://${socketDir}/docker.sock`, container: name, volume, stop };
}

/** The local image `ref`, loaded into the engine at `host` (docker save | docker load): no second bootstrap there. */
export async function loadImage(ref, host) {
  const save = execa('docker', ['save', ref], { buffer: { stdout: false } });
  const load = execa('docker', ['-H', host, 'load'], { stdin: 'pipe' });
  save.stdout.pipe(load.stdin);
  await Promise.all([save, load]);
}
