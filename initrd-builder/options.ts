/** Options of `osbuilder initrd` / buildInitrd() (the rootfs and -o are the command's own). */
import { tableDefaults, type OptionSpec, type OptionValues } from '../core/options.js';
import { COMPRESSIONS, DEFAULT_COMPRESSION, resolveCompression } from './codecs.js';

export const INITRD_OPTIONS = [
  {
    key: 'compression',
    flag: 'compression',
    kind: 'string',
    choices: COMPRESSIONS,
    default: DEFAULT_COMPRESSION,
    output: true,
    describe: 'Compression; the guest kernel needs the matching CONFIG_RD_*',
  },
  { key: 'level', flag: 'level', kind: 'number', output: true, describe: 'Compression level (default: zstd 3, gzip 9, xz 6, lz4 9)' },
  {
    key: 'rootOwned',
    flag: 'root-owned',
    kind: 'boolean',
    default: false,
    output: true,
    describe: 'Store every entry as owned by 0:0 instead of the rootfs owners',
  },
] as const satisfies readonly OptionSpec[];

export type InitrdOptionValues = OptionValues<typeof INITRD_OPTIONS>;

/** The options with every default filled in (the level: the codec's), validated. */
export function resolveInitrdOptions(o: InitrdOptionValues): { compression: string; level: number | null; rootOwned: boolean } {
  const d = tableDefaults(INITRD_OPTIONS);
  const { compression, level } = resolveCompression(o.compression ?? d.compression!, o.level);
  return { compression, level: level ?? null, rootOwned: o.rootOwned ?? d.rootOwned! };
}
