import type { CommandModule } from 'yargs';
import { buildImage, imageOptionsFromCli, type ImageCliArgs, type ImageResult } from '../../image-builder/index.js';
import { runCommand, table, type GlobalArgs } from '../output.js';

interface ImageArgs extends GlobalArgs, ImageCliArgs {}

const mib = (b: number) => `${(b / 1048576).toFixed(b % 1048576 ? 1 : 0)} MiB`;

function human(r: ImageResult): string {
  const layout = r.dax ? 'MBR + DAX header (nvdimm and virtio-blk)' : r.partitionTable === 'gpt' ? 'GPT' : 'MBR';
  return [
    `image ${r.path}`,
    `  ${mib(r.sizeBytes)}, ${r.fsType} uuid ${r.uuid}, ${layout}${r.reproducible ? ', reproducible (SOURCE_DATE_EPOCH)' : ''}`,
    table(
      ['#', 'role', 'start', 'size', 'type'],
      r.partitions.map((p) => [String(p.number), p.role, mib(p.start), mib(p.size), p.type]),
    ).replace(/^/gm, '  '),
    ...(r.verity ? [`  verity root hash ${r.verity.rootHash} (${r.verity.rootHashFile})`, `  kernel_verity_params = "${r.verity.kernelVerityParams}" (${r.verity.paramsFile})`] : []),
    ...(r.sha256 ? [`  sha256 ${r.sha256}`] : []),
    `  checked: ${r.checks.join(', ')}`,
  ].join('\n');
}

export const imageCommand: CommandModule<GlobalArgs, ImageArgs> = {
  command: 'image <rootfs>',
  describe: 'Make a raw Kata guest disk image from a rootfs directory, without loop devices, mounts or privileges',
  builder: (y) =>
    y
      .positional('rootfs', { type: 'string', demandOption: true, describe: 'Rootfs directory (osbuilder rootfs makes one)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Image file to write [env IMAGE]' })
      .option('size', { type: 'string', describe: 'Image size in MiB (default: the smallest multiple of 128 MiB that holds the rootfs)' })
      .option('root-free-space', { alias: 'r', type: 'string', describe: 'Free space to leave in the root filesystem, MiB [env ROOT_FREE_SPACE]' })
      .option('fs-type', { alias: 'f', type: 'string', describe: 'ext4 (default) or erofs (read-only); xfs is refused: mkfs.xfs cannot populate it faithfully without privileges [env FS_TYPE]' })
      .option('dax', { type: 'boolean', describe: "Kata's nvdimm layout: MBR #1 at 0, DAX info block at 4 KiB, MBR #2 at 2 MiB, root at 3 MiB (default). --no-dax: plain disk, root at 1 MiB" })
      .option('partition-table', { type: 'string', describe: 'mbr (default) or gpt (the older layout, root from 1 MiB to 1 MiB before the end; needs --no-dax)' })
      .option('verity', { type: 'boolean', describe: 'Add a dm-verity hash partition (no superblock, as Kata) and, beside the image, root_hash.txt (veritysetup\'s report) and root_hash_<variant>.txt (kernel_verity_params) [env MEASURED_ROOTFS=yes]' })
      .option('build-variant', { type: 'string', describe: 'The <variant> of root_hash_<variant>.txt (default empty: root_hash_.txt, as Kata) [env BUILD_VARIANT]' })
      .option('skip-agent-check', { type: 'boolean', describe: 'Do not require an init and /usr/bin/kata-agent (bare images)' })
      .option('sha256', { type: 'boolean', describe: "Report the image's sha256 (reads it once more)" })
      .epilog(
        [
          'SOURCE_DATE_EPOCH: filesystem UUID, hash seed, disk ids, verity salt and all timestamps',
          'derive from it, so two builds of the same rootfs are byte-identical.',
          '',
          '--json result: { path, sizeBytes, fsType, dax, partitionTable, uuid, diskIds, reproducible,',
          '  partitions: [{ number, role, start, size, type, uuid? }], rootfs: { path, inodes, fileBytes },',
          '  checks, sha256?, rootHash?, verity?: { rootHash, salt, hashAlgorithm, dataBlocks, dataBlockSize,',
          '  hashBlockSize, hashOffset, kernelVerityParams, rootHashFile, paramsFile } }; start/size in bytes',
          '  from the start of the file;',
          '  type "83" (MBR) or the GPT type GUID.',
        ].join('\n'),
      ) as never,
  handler: (argv) =>
    runCommand(
      argv,
      async () => buildImage(imageOptionsFromCli(argv, process.env)),
      human,
    ),
};
