import type { CommandModule } from 'yargs';
import { addOptions } from '../../core/options.js';
import { buildRootfs, rootfsOptionsFromCli, ROOTFS_OPTIONS, type RootfsCliArgs } from '../../rootfs-builder/index.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface RootfsArgs extends GlobalArgs {
  distro: string;
  output?: string;
}

export const rootfsCommand: CommandModule<GlobalArgs, RootfsArgs> = {
  command: 'rootfs <distro>',
  describe: "Build a guest rootfs directory for a distro with the agent installed (Kata's rootfs.sh)",
  builder: (y) =>
    addOptions(y, ROOTFS_OPTIONS)
      .positional('distro', { type: 'string', demandOption: true, describe: 'Distro to build (osbuilder distros lists them)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Rootfs directory to create [env ROOTFS_DIR]' }) as never,

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
