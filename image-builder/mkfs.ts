/** Command lines of the tools that make and check the filesystem (plain argv arrays). */
import { fileURLToPath } from 'node:url';
import { OsbuilderError } from '../core/errors.js';
import { BLOCK } from './scan.js';
import { RESERVED_PERCENT } from './size.js';

/** Our own mke2fs.conf, so the features do not depend on the host's /etc/mke2fs.conf. */
export const MKE2FS_CONFIG = fileURLToPath(new URL('./mke2fs.conf', import.meta.url));

export interface Mke2fsSpec {
  device: string;
  /** Byte offset of the filesystem in `device` (the partition start). */
  offset: number;
  bytes: number;
  rootfs: string;
  uuid: string;
  hashSeed: string;
  inodes: number;
}

/**
 * mke2fs -d populates the filesystem from the directory straight into the
 * file at the partition's offset: no loop device, no mount, no privileges.
 * `assume_storage_prezeroed` holds because the target is a fresh sparse file:
 * mke2fs skips writing zeros over the inode tables and the journal.
 */
export function mke2fsArgs(s: Mke2fsSpec): string[] {
  return [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-b',
    String(BLOCK),
    '-m',
    String(RESERVED_PERCENT),
    '-N',
    String(s.inodes),
    '-U',
    s.uuid,
    '-E',
    [`offset=${s.offset}`, `hash_seed=${s.hashSeed}`, 'assume_storage_prezeroed=1', 'nodiscard'].join(','),
    '-d',
    s.rootfs,
    s.device,
    String(s.bytes / BLOCK),
  ];
}

/** Environment for mke2fs: our config; with SOURCE_DATE_EPOCH the superblock times and crtimes are the epoch. */
export function mke2fsEnv(epoch: number | undefined): Record<string, string | undefined> {
  return { MKE2FS_CONFIG, E2FSPROGS_FAKE_TIME: epoch === undefined ? undefined : String(epoch), E2FSPROGS_SKIP_PROGRESS: '1' };
}

/** e2fsprogs tools read "file?offset=N" as the filesystem starting N bytes into the file. */
export function offsetDevice(file: string, offset: number): string {
  return offset === 0 ? file : `${file}?offset=${offset}`;
}

export function e2fsckArgs(file: string, offset: number): string[] {
  return ['-f', '-n', offsetDevice(file, offset)];
}

/**
 * mkfs.erofs as Kata calls it (-Enoinline_data). With SOURCE_DATE_EPOCH in
 * its environment erofs-utils 1.5 uses it as the build time and clamps file
 * mtimes to it.
 */
export function mkfsErofsArgs(output: string, rootfs: string, uuid: string): string[] {
  return ['--quiet', '-Enoinline_data', '-U', uuid, output, rootfs];
}

export function mkfsErofsEnv(epoch: number | undefined): Record<string, string | undefined> {
  return { SOURCE_DATE_EPOCH: epoch === undefined ? undefined : String(epoch) };
}

export interface VeritySpec {
  data: string;
  hash: string;
  hashOffset: number;
  dataBlocks: number;
  /** Hex salt; omitted = veritysetup picks a random one. */
  salt?: string;
}

/**
 * The hash tree with no superblock, as Kata's image_builder.sh makes it: the
 * kernel's dm-verity table (kernel_verity_params) reads the tree from block 0
 * of the hash partition. veritysetup works on regular files for format and
 * verify (no device mapper involved).
 */
function treeArgs(v: VeritySpec, salt: string | undefined): string[] {
  return [
    '--no-superblock',
    '--hash=sha256',
    `--data-block-size=${BLOCK}`,
    `--hash-block-size=${BLOCK}`,
    `--data-blocks=${v.dataBlocks}`,
    `--hash-offset=${v.hashOffset}`,
    ...(salt ? [`--salt=${salt}`] : []),
  ];
}

export function verityFormatArgs(v: VeritySpec): string[] {
  return ['format', ...treeArgs(v, v.salt), v.data, v.hash];
}

/** With no superblock, verify needs the format's parameters again, the salt it used included. */
export function verityVerifyArgs(v: VeritySpec, salt: string, rootHash: string): string[] {
  return ['verify', ...treeArgs(v, salt), v.data, v.hash, rootHash];
}

export interface VerityFormatOutput {
  rootHash: string;
  salt: string;
}

/** Reads "Root hash:" and "Salt:" from veritysetup format's report. */
export function parseVerityFormat(stdout: string): VerityFormatOutput {
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)\\s*$`, 'm').exec(stdout)?.[1];
  const rootHash = field('Root hash');
  if (!rootHash || !/^[0-9a-f]{64}$/.test(rootHash)) {
    throw new OsbuilderError(
      'COMMAND_FAILED',
      `no root hash in veritysetup output:\n${stdout}`,
      'veritysetup format did not report a root hash: check that cryptsetup-bin (veritysetup) is installed and working',
    );
  }
  const salt = field('Salt');
  if (!salt || !/^[0-9a-f]+$/.test(salt)) {
    throw new OsbuilderError(
      'COMMAND_FAILED',
      `no salt in veritysetup output:\n${stdout}`,
      'veritysetup format did not report its salt: check that cryptsetup-bin (veritysetup) is installed and working',
    );
  }
  return { rootHash, salt };
}
