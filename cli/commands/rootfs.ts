import type { CommandModule } from 'yargs';
import { buildRootfs, rootfsOptionsFromCli, ENGINES, PACKAGE_CACHE_OPTION, type RootfsCliArgs } from '../../rootfs-builder/index.js';
import { OsbuilderError } from '../../core/errors.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface RootfsArgs extends GlobalArgs, Omit<RootfsCliArgs, 'debug'> {
  'docker-host'?: string;
}

/** --docker-host: the engine to build on, near or far (only its API is used: the rootfs comes back as a tar stream). */
function useDockerHost(host: string | undefined, engine: string | undefined): void {
  if (host === undefined) return;
  if (engine !== 'docker') throw new OsbuilderError('USAGE', `--docker-host is for --engine docker, not ${engine}`, 'drop --docker-host (podman reads CONTAINER_HOST)');
  process.env.DOCKER_HOST = host;
}

export const rootfsCommand: CommandModule<GlobalArgs, RootfsArgs> = {
  command: 'rootfs <distro>',
  describe: "Build a guest rootfs directory for a distro with the agent installed (Kata's rootfs.sh)",
  builder: (y) =>
    y
      .positional('distro', { type: 'string', demandOption: true, describe: 'Distro to build (osbuilder distros lists them)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Rootfs directory to create [env ROOTFS_DIR]' })
      .option('os-version', { type: 'string', describe: 'Distro version, e.g. bookworm or 12 [env OS_VERSION]' })
      .option('arch', { type: 'string', describe: 'Target architecture (x86_64, aarch64, ppc64le, s390x) [env ARCH]; default: the host' })
      .option('engine', { type: 'string', choices: ENGINES as unknown as string[], describe: 'Where to bootstrap [env USE_DOCKER / USE_PODMAN]; default docker' })
      .option('agent', { type: 'string', describe: "Agent binary to install [env AGENT_SOURCE_BIN]; default: osbuilder's own agent" })
      .option('agent-init', { type: 'boolean', describe: 'Make the agent /sbin/init and /init instead of using systemd [env AGENT_INIT=yes|no]' })
      .option('extra-pkgs', { type: 'string', describe: 'Extra packages, space separated [env EXTRA_PKGS]' })
      .option('kernel-modules', { type: 'string', describe: 'Modules directory of one kernel, copied to /lib/modules/<release> [env KERNEL_MODULES_DIR]' })
      .option('mirror', { type: 'string', describe: 'Package archive URL for the guest and the builder' })
      .option('base-image', { type: 'string', describe: 'Local image to base the builder on (default: made locally for Debian-based distros, else pulled from the registry)' })
      .option('docker-host', { type: 'string', describe: 'Docker engine to build on, local or remote (sets DOCKER_HOST; no shared path needed)' })
      .option('bootstrap-base', { type: 'boolean', describe: 'Make the Debian base image locally (mmdebstrap | docker import), reused when present: the default for Debian-based distros; --no-bootstrap-base pulls it' })
      .option('package-cache', PACKAGE_CACHE_OPTION) as never,
  handler: (argv) => {
    let opts: ReturnType<typeof rootfsOptionsFromCli> | undefined;
    let early: unknown;
    try {
      opts = rootfsOptionsFromCli(argv, process.env);
    } catch (err) {
      early = err;
    }
    return runCommand(
      { json: argv.json, debug: argv.debug || (opts?.debug ?? false) },
      async () => {
        if (early) throw early;
        useDockerHost(argv['docker-host'], opts!.engine);
        return buildRootfs(opts!);
      },
      (r) =>
        [
          `rootfs ${r.rootfs}`,
          `  ${r.distro} ${r.version} ${r.arch}, ${r.initMode === 'agent-init' ? 'agent as init' : 'systemd'}, ${r.packages} packages${r.osRelease ? ` (${r.osRelease})` : ''}`,
          `  agent /usr/bin/kata-agent sha256 ${r.agent.sha256.slice(0, 16)}… from ${r.agent.source}`,
          ...(r.kernelModules ? [`  kernel modules ${r.kernelModules}`] : []),
          ...(r.builderImage ? [`  builder ${r.builderImage}`] : []),
          ...(r.packageCache ? [`  package cache ${r.packageCache.dir}: ${r.packageCache.before} .debs before, ${r.packageCache.stored} stored`] : []),
        ].join('\n'),
    );
  },
};
