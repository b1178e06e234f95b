/** Options of `osbuilder image` / buildImage(), validated before any work. */
import { resolve } from 'node:path';
import { OsbuilderError } from '../core/errors.js';
import { readOptions, tableDefaults, type OptionSpec, type OptionValues } from '../core/options.js';
import { sourceDateEpoch } from '../core/time.js';
import { checkBuiltFsType, checkMiB, FS_TYPES, type BuiltFsType } from '../core/vocab.js';
import type { PartitionTable } from './layout.js';
import { MAX_IMAGE_MIB } from './size.js';

export const PARTITION_TABLES = ['mbr', 'gpt'] as const;

/** The image stage's options (the rootfs and -o are the command's own). */
export const IMAGE_OPTIONS = [
  { key: 'sizeMiB', flag: 'size', kind: 'mib', output: true, describe: 'Image size in MiB (default: the smallest multiple of 128 MiB that holds the rootfs)' },
  {
    key: 'rootFreeSpaceMiB',
    flag: 'root-free-space',
    alias: 'r',
    kind: 'mib',
    default: 0,
    env: 'ROOT_FREE_SPACE',
    output: true,
    describe: 'Free space to leave in the root filesystem, MiB',
  },
  {
    key: 'fsType',
    flag: 'fs-type',
    alias: 'f',
    kind: 'string',
    choices: FS_TYPES,
    default: 'ext4',
    env: 'FS_TYPE',
    output: true,
    describe: 'Root filesystem: ext4, or erofs (read-only); xfs is refused: mkfs.xfs cannot populate it faithfully without privileges',
  },
  {
    key: 'dax',
    flag: 'dax',
    kind: 'boolean',
    default: true,
    output: true,
    describe:
      "Kata's nvdimm layout: MBR #1 at 0, DAX info block at 4 KiB, MBR #2 at 2 MiB, root at 3 MiB; off: a plain disk, root at 1 MiB, booted over virtio-blk",
  },
  {
    key: 'partitionTable',
    flag: 'partition-table',
    kind: 'string',
    choices: PARTITION_TABLES,
    default: 'mbr',
    output: true,
    describe: 'Partition table; gpt is the older layout, root from 1 MiB to 1 MiB before the end, and needs --no-dax',
  },
  {
    key: 'verity',
    flag: 'verity',
    kind: 'boolean',
    default: false,
    env: 'MEASURED_ROOTFS',
    output: true,
    describe:
      "Add a dm-verity hash partition (no superblock, as Kata) and, beside the image, root_hash.txt (veritysetup's report) and root_hash_<variant>.txt (kernel_verity_params)",
  },
  {
    key: 'buildVariant',
    flag: 'build-variant',
    kind: 'string',
    env: 'BUILD_VARIANT',
    output: true,
    describe: 'The <variant> of root_hash_<variant>.txt (default empty: root_hash_.txt, as Kata)',
    notInBuild: "osbuilder build installs the parameters as root_hash_.txt, Kata's name for the base image's",
  },
  { key: 'skipAgentCheck', flag: 'skip-agent-check', kind: 'boolean', output: false, describe: 'Do not require an init and /usr/bin/kata-agent (bare images)' },
  { key: 'sha256', flag: 'sha256', kind: 'boolean', output: false, describe: "Report the image's sha256 (reads it once more)" },
] as const satisfies readonly OptionSpec[];

export type ImageOptionValues = OptionValues<typeof IMAGE_OPTIONS>;
const DEFAULTS = tableDefaults(IMAGE_OPTIONS);

/** Options of buildImage(): the rootfs, the image file, and IMAGE_OPTIONS. */
export interface BuildImageOptions extends ImageOptionValues {
  /** Rootfs directory (made by `osbuilder rootfs`). */
  rootfs: string;
  /** Image file to write (nothing is left there on error). */
  output: string;
  /** Overrides SOURCE_DATE_EPOCH from the environment; null = none (random ids). */
  sourceDateEpoch?: number | null;
}

export interface ResolvedImageOptions {
  rootfs: string;
  output: string;
  sizeMiB?: number;
  rootFreeSpaceMiB: number;
  fsType: BuiltFsType;
  dax: boolean;
  partitionTable: PartitionTable;
  verity: boolean;
  buildVariant: string;
  skipAgentCheck: boolean;
  sha256: boolean;
  epoch?: number;
}

export function resolveImageOptions(o: BuildImageOptions, env: NodeJS.ProcessEnv = process.env): ResolvedImageOptions {
  const fsType = checkBuiltFsType(o.fsType ?? DEFAULTS.fsType!);
  const table = o.partitionTable ?? DEFAULTS.partitionTable!;
  if (!(PARTITION_TABLES as readonly string[]).includes(table)) {
    throw new OsbuilderError(
      'USAGE',
      `unknown partition table "${table}"; valid: ${PARTITION_TABLES.join(', ')}`,
      'use --partition-table mbr (default) or gpt',
    );
  }
  const dax = o.dax ?? DEFAULTS.dax!;
  if (table === 'gpt' && dax) {
    throw new OsbuilderError(
      'UNSUPPORTED',
      'a GPT cannot carry the DAX header: its entry array fills bytes 1024-17407, over the nd_pfn_sb info block at 4 KiB, and the nvdimm view from 2 MiB would need a second backup GPT header at the same last sector',
      'add --no-dax for a GPT disk, or keep the default MBR layout for nvdimm/DAX',
    );
  }
  if (o.sizeMiB !== undefined) checkMiB(o.sizeMiB, '--size');
  if (o.rootFreeSpaceMiB !== undefined) checkMiB(o.rootFreeSpaceMiB, '--root-free-space');
  const rootFree = o.rootFreeSpaceMiB ?? DEFAULTS.rootFreeSpaceMiB!;
  if (fsType === 'erofs' && rootFree > 0) {
    throw new OsbuilderError('USAGE', 'erofs is read-only: --root-free-space does not apply to it', 'drop --root-free-space, or use --fs-type ext4');
  }
  // An odd --size with DAX is refused by the builder, whose hint needs the rootfs (build.ts).
  if (o.sizeMiB !== undefined && o.sizeMiB > MAX_IMAGE_MIB)
    throw new OsbuilderError('USAGE', `--size ${o.sizeMiB} MiB is above the 2 TiB an MBR-era image can address`, 'choose a smaller --size');
  const buildVariant = o.buildVariant ?? '';
  if (!/^[A-Za-z0-9._-]*$/.test(buildVariant)) {
    throw new OsbuilderError(
      'USAGE',
      `--build-variant ${JSON.stringify(buildVariant)} is not a file name part: letters, digits, ".", "_" and "-" only`,
      'e.g. --build-variant confidential',
    );
  }
  if (o.buildVariant !== undefined && !(o.verity ?? false)) {
    throw new OsbuilderError('USAGE', '--build-variant names the verity parameters file: it needs --verity', 'add --verity, or drop --build-variant');
  }
  const epoch = o.sourceDateEpoch === null ? undefined : (o.sourceDateEpoch ?? sourceDateEpoch(env));
  return {
    rootfs: resolve(o.rootfs),
    output: resolve(o.output),
    ...(o.sizeMiB !== undefined ? { sizeMiB: o.sizeMiB } : {}),
    rootFreeSpaceMiB: rootFree,
    fsType,
    dax,
    partitionTable: table as PartitionTable,
    verity: o.verity ?? DEFAULTS.verity!,
    buildVariant,
    skipAgentCheck: o.skipAgentCheck ?? false,
    sha256: o.sha256 ?? false,
    ...(epoch !== undefined ? { epoch } : {}),
  };
}

export interface ImageCliArgs {
  rootfs: string;
  output?: string;
  [flag: string]: unknown;
}

/**
 * CLI flags, with Kata's environment variables as defaults: IMAGE (-o) and
 * those of IMAGE_OPTIONS. BUILD_VARIANT counts only with verity on.
 */
export function imageOptionsFromCli(a: ImageCliArgs, env: NodeJS.ProcessEnv = process.env): BuildImageOptions {
  const output = a.output ?? env.IMAGE;
  if (!output) throw new OsbuilderError('USAGE', 'no output file: give -o <file> (or IMAGE=<file>)', 'e.g. osbuilder image ./rootfs -o kata-containers.img');
  const given = readOptions(IMAGE_OPTIONS, a, env);
  const fromFlag = a['build-variant'] ?? a.buildVariant;
  if (fromFlag === undefined && !given.verity) delete given.buildVariant;
  return { rootfs: a.rootfs, output, ...given };
}
