import type { CommandModule } from 'yargs';
import { addOptions, readOptions } from '../../core/options.js';
import { buildInitrd, INITRD_OPTIONS } from '../../initrd-builder/index.js';
import { runCommand, type GlobalArgs } from '../output.js';
import { mib } from '../../core/vocab.js';

interface InitrdArgs extends GlobalArgs {
  rootfs: string;
  output: string;
}

export const initrdCommand: CommandModule<GlobalArgs, InitrdArgs> = {
  command: 'initrd <rootfs>',
  describe: 'Pack a rootfs directory (agent as /init) into a compressed cpio newc initrd',
  builder: (y) =>
    addOptions(y, INITRD_OPTIONS)
      .positional('rootfs', { type: 'string', demandOption: true, describe: 'Rootfs directory (build it with osbuilder rootfs … --agent-init)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Initrd file to write (replaced only once complete and verified)' })
      .example('$0 initrd ./rootfs -o kata-containers-initrd.img', 'zstd -3, owners and modes as in ./rootfs')
      .example('SOURCE_DATE_EPOCH=1700000000 $0 initrd ./rootfs -o x.initrd --compression gzip', 'reproducible, gzip -9 like Kata') as never,
  handler: (argv) =>
    runCommand(
      argv,
      () => buildInitrd({ rootfs: argv.rootfs, output: argv.output, ...readOptions(INITRD_OPTIONS, argv) }),
      (r) =>
        [
          `initrd ${r.path}`,
          `  ${r.compression}${r.level === null ? '' : ` -${r.level}`}, ${r.entries} entries, ${mib(r.sizeBytes)} (${mib(r.uncompressedBytes)} uncompressed)`,
          `  sha256 ${r.sha256}`,
        ].join('\n'),
    ),
};
