import type { CommandModule } from 'yargs';
import { DISTROS, summarize } from '../../distros/index.js';
import { runCommand, table, type GlobalArgs } from '../output.js';

export const distrosCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'distros',
  describe: 'List the distros a rootfs can be built from, with versions, arches and init modes',
  handler: (argv) =>
    runCommand(
      argv,
      async () => ({ distros: DISTROS.map(summarize) }),
      (r) =>
        table(
          ['distro', 'versions (default first)', 'arches', 'bootstrap', 'systemd', 'init modes', 'in tests (else rendered only)'],
          r.distros.map((d) => [
            d.name,
            [d.defaultVersion, ...d.versions.filter((v) => v !== d.defaultVersion)].join(' '),
            d.arches.join(' '),
            d.bootstrapTool,
            d.systemd ? 'yes' : 'no',
            d.initModes.join(' '),
            [...d.booted.map((b) => `${b.arch} ${b.formats.join('+')} booted`), ...d.built.map((b) => `${b.arch} ${b.formats.join('+')} built`)].join(', ') ||
              '-',
          ]),
        ),
    ),
};
