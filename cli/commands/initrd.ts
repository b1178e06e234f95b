import type { CommandModule } from 'yargs';
import { buildInitrd, COMPRESSIONS, DEFAULT_COMPRESSION } from '../../initrd-builder/index.js';
import { mib, runCommand, type GlobalArgs } from '../output.js';

interface InitrdArgs extends GlobalArgs {
  rootfs: string;
  output: string;
  compression: string;
  level?: number;
  rootOwned: boolean;
}

export const initrdCommand: CommandModule<GlobalArgs, InitrdArgs> = {
  command: 'initrd <rootfs>',
  describe: 'Pack a rootfs directory (agent as /init) into a compressed cpio newc initrd',
  builder: (y) =>
    y
      .positional('rootfs', { type: 'string', demandOption: true, describe: 'Rootfs directory (build it with osbuilder rootfs … --agent-init)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Initrd file to write (replaced only once complete and verified)' })
      .option('compression', { type: 'string', default: DEFAULT_COMPRESSION, describe: `Compression: ${COMPRESSIONS.join('|')}; the guest kernel needs the matching CONFIG_RD_*` })
      .option('level', { type: 'number', describe: 'Compression level (default: zstd 3, gzip 9, xz 6, lz4 9)' })
      .option('root-owned', { type: 'boolean', default: false, describe: 'Store every entry as owned by 0:0 instead of the rootfs owners' })
      .example('$0 initrd ./rootfs -o kata-containers-initrd.img', 'zstd -3, owners and modes as in ./rootfs')
      .example('SOURCE_DATE_EPOCH=1700000000 $0 initrd ./rootfs -o x.initrd --compression gzip', 'reproducible, gzip -9 like Kata') as never,
  handler: (argv) =>
    runCommand(
      argv,
      () => buildInitrd({ rootfs: argv.rootfs, output: argv.output, compression: argv.compression, level: argv.level, rootOwned: argv.rootOwned }),
      (r) =>
        [
          `initrd ${r.path}`,
          `  ${r.compression}${r.level === null ? '' : ` -${r.level}`}, ${r.entries} entries, ${mib(r.sizeBytes)} (${mib(r.uncompressedBytes)} uncompressed)`,
          `  sha256 ${r.sha256}`,
        ].join('\n'),
    ),
};
