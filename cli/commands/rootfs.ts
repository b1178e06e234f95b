import type { CommandModule } from 'yargs';
import { OsbuilderError } from '../../core/errors.js';
import { addOptions } from '../../core/options.js';
import { buildRootfs, rootfsOptionsFromCli, ROOTFS_OPTIONS, type RootfsCliArgs } from '../../rootfs-builder/index.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface RootfsArgs extends GlobalArgs {
  distro: string;
  output?: string;
  'docker-host'?: string;
}

/** --docker-host: the engine to build on, near or far (a remote one sends the rootfs back as a tar stream). */
function useDockerHost(host: string | undefined, engine: string | undefined): void {
  if (host === undefined) return;
  if (engine !== 'docker')
    throw new OsbuilderError('USAGE', `--docker-host is for --engine docker, not ${engine}`, 'drop --docker-host (podman reads CONTAINER_HOST)');
  process.env.DOCKER_HOST = host;
}

export const rootfsCommand: CommandModule<GlobalArgs, RootfsArgs> = {
  command: 'rootfs <distro>',
  describe: "Build a guest rootfs directory for a distro with the agent installed (Kata's rootfs.sh)",
  builder: (y) =>
    addOptions(y, ROOTFS_OPTIONS)
      .positional('distro', { type: 'string', demandOption: true, describe: 'Distro to build (osbuilder distros lists them)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Rootfs directory to create [env ROOTFS_DIR]' })
      .option('docker-host', { type: 'string', describe: 'Docker engine to build on, local or remote (sets DOCKER_HOST; no shared path needed)' }) as never,

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
