/**
 * Kata's kernel_verity_params (configuration.toml, image_builder.sh's
 * root_hash_<variant>.txt): "root_hash=<hex>,salt=<hex>,data_blocks=<n>,
 * data_block_size=<n>,hash_block_size=<n>". Written by the image builder,
 * read by the runtime with the checks Kata's runtime makes
 * (ParseKernelVerityParams).
 */
import { OsbuilderError } from './errors.js';
import type { FsType } from './vocab.js';

export interface VerityParams {
  rootHash: string;
  salt: string;
  dataBlocks: number;
  dataBlockSize: number;
  hashBlockSize: number;
}

export function formatVerityParams(p: VerityParams): string {
  return `root_hash=${p.rootHash},salt=${p.salt},data_blocks=${p.dataBlocks},data_block_size=${p.dataBlockSize},hash_block_size=${p.hashBlockSize}`;
}

function invalid(message: string, where: string): OsbuilderError {
  return new OsbuilderError(
    'CONFIG_INVALID',
    `${where}: ${message}`,
    'use the string the image build wrote beside the image (root_hash_<variant>.txt): root_hash=<hex>,salt=<hex>,data_blocks=<n>,data_block_size=<n>,hash_block_size=<n>; empty turns verity off',
  );
}

/** Undefined for an empty string (verity off); every other malformed form is an error naming `where`. */
export function parseVerityParams(text: string, where = 'kernel_verity_params'): VerityParams | undefined {
  if (text.trim() === '') return undefined;
  const values = new Map<string, string>();
  for (const raw of text.split(',')) {
    const field = raw.trim();
    if (field === '') continue;
    const eq = field.indexOf('=');
    if (eq < 0) throw invalid(`entry ${JSON.stringify(field)} is not key=value`, where);
    values.set(field.slice(0, eq), field.slice(eq + 1));
  }
  const hex = (name: string): string => {
    const v = values.get(name);
    if (!v) throw invalid(`missing ${name}`, where);
    if (!/^[0-9a-fA-F]+$/.test(v) || v.length % 2) throw invalid(`${name} ${JSON.stringify(v)} is not a hex string`, where);
    return v.toLowerCase();
  };
  const count = (name: string, multipleOf = 1): number => {
    const v = values.get(name);
    if (v === undefined || v === '') throw invalid(`missing ${name}`, where);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw invalid(`${name} ${JSON.stringify(v)} is not a whole number`, where);
    const n = Number(v);
    if (n === 0) throw invalid(`${name} must be non-zero`, where);
    if (n % multipleOf) throw invalid(`${name} ${n} must be a multiple of ${multipleOf}`, where);
    return n;
  };
  // Kata's order of checks; other keys are ignored, as Kata does.
  const rootHash = hex('root_hash');
  const dataBlocks = count('data_blocks');
  const dataBlockSize = count('data_block_size', 512);
  const hashBlockSize = count('hash_block_size', 512);
  return { rootHash, salt: hex('salt'), dataBlocks, dataBlockSize, hashBlockSize };
}

/**
 * The kernel parameters Kata's runtime derives (GetKernelRootParams): a
 * dm-verity table over the root (p1) and hash (p2) partitions, mounted from
 * /dev/dm-0. The table is one parameter: quoted, it holds spaces.
 */
export function verityRootParams(p: VerityParams, nvdimm: boolean, rootfsType: FsType): string[] {
  const [root, hash] = nvdimm ? ['/dev/pmem0p1', '/dev/pmem0p2'] : ['/dev/vda1', '/dev/vda2'];
  const dataSectors = (p.dataBlockSize / 512) * p.dataBlocks;
  const table = `dm-verity,,,ro,0 ${dataSectors} verity 1 ${root} ${hash} ${p.dataBlockSize} ${p.hashBlockSize} ${p.dataBlocks} 0 sha256 ${p.rootHash} ${p.salt}`;
  const flags = rootfsType === 'ext4' ? ['rootflags=data=ordered,errors=remount-ro', 'ro'] : ['rootflags=ro'];
  return [`dm-mod.create="${table}"`, 'root=/dev/dm-0', ...flags, `rootfstype=${rootfsType}`];
}
