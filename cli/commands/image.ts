import type { CommandModule } from 'yargs';
import { addOptions } from '../../core/options.js';
import { buildImage, imageOptionsFromCli, IMAGE_OPTIONS, type ImageCliArgs, type ImageResult } from '../../image-builder/index.js';
import { runCommand, table, type GlobalArgs } from '../output.js';
import { mib as formatMiB } from '../../core/vocab.js';

interface ImageArgs extends GlobalArgs, ImageCliArgs {}

const mib = (b: number) => formatMiB(b, true);

function human(r: ImageResult): string {
  const layout = r.dax ? 'MBR + DAX header (nvdimm and virtio-blk)' : r.partitionTable === 'gpt' ? 'GPT' : 'MBR';
  return [
    `image ${r.path}`,
    `  ${mib(r.sizeBytes)}, ${r.fsType} uuid ${r.uuid}, ${layout}${r.reproducible ? ', reproducible (SOURCE_DATE_EPOCH)' : ''}`,
    table(
      ['#', 'role', 'start', 'size', 'type'],
      r.partitions.map((p) => [String(p.number), p.role, mib(p.start), mib(p.size), p.type]),
    ).replace(/^/gm, '  '),
    ...(r.verity
      ? [
          `  verity root hash ${r.verity.rootHash} (${r.verity.rootHashFile})`,
          `  kernel_verity_params = "${r.verity.kernelVerityParams}" (${r.verity.paramsFile})`,
        ]
      : []),
    ...(r.sha256 ? [`  sha256 ${r.sha256}`] : []),
    `  checked: ${r.checks.join(', ')}`,
  ].join('\n');
}

export const imageCommand: CommandModule<GlobalArgs, ImageArgs> = {
  command: 'image <rootfs>',
  describe: 'Make a raw Kata guest disk image from a rootfs directory, without loop devices, mounts or privileges',
  builder: (y) =>
    addOptions(y, IMAGE_OPTIONS)
      .positional('rootfs', { type: 'string', demandOption: true, describe: 'Rootfs directory (osbuilder rootfs makes one)' })
      .option('output', { alias: 'o', type: 'string', describe: 'Image file to write [env IMAGE]' })
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
  handler: (argv) => runCommand(argv, async () => buildImage(imageOptionsFromCli(argv, process.env)), human),
};
