/**
 * The executor: check the rootfs, plan sizes and tables, make the filesystem
 * straight into the image file, write the tables, verify, rename into place.
 */
import { open, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { rmSync } from 'node:fs';
import { atomicOutput, checkOutputPath, tempPathFor } from '../core/atomic.js';
import { onInterrupt } from '../core/cleanup.js';
import { OsbuilderError } from '../core/errors.js';
import { formatVerityParams } from '../core/verity-params.js';
import { run } from '../core/exec.js';
import { sha256File } from '../core/hash.js';
import { step } from '../core/log.js';
import { MiB, type BuiltFsType } from '../core/vocab.js';
import { imageIds, type ImageIds } from './ids.js';
import { normalizeExt4Times } from './ext4-times.js';
import { planTables, type PartitionTable, type PlannedPartition, type TablePlan } from './layout.js';
import {
  e2fsckArgs,
  mke2fsArgs,
  mke2fsEnv,
  mkfsErofsArgs,
  mkfsErofsEnv,
  parseVerityFormat,
  verityFormatArgs,
  verityVerifyArgs,
  type VeritySpec,
} from './mkfs.js';
import { resolveImageOptions, type BuildImageOptions, type ResolvedImageOptions } from './options.js';
import { checkRootfsContent, checkRootfsDir } from './rootfs-check.js';
import { BLOCK, scanRootfs, type RootfsStats } from './scan.js';
import { ext4Fit, ext4Inodes, grownSize, planSize, regionsFor, smallestSizeMiB, type SizePlan, type SizeRequest } from './size.js';
import { verifyDax, verifyTables } from './verify.js';

export interface ImageResult {
  /** Absolute path of the image. */
  path: string;
  sizeBytes: number;
  fsType: BuiltFsType;
  dax: boolean;
  partitionTable: PartitionTable;
  /** Offsets and sizes in bytes from the start of the file; type "83" (MBR) or the GPT type GUID. */
  partitions: PlannedPartition[];
  /** Filesystem UUID. */
  uuid: string;
  /** MBR disk signature(s) ("0x…", one per view: byte 0 and, with DAX, 2 MiB) or the GPT disk GUID. */
  diskIds: string[];
  /** True when SOURCE_DATE_EPOCH fixed every id and timestamp (byte-identical rebuilds). */
  reproducible: boolean;
  rootfs: { path: string; inodes: number; fileBytes: number };
  sha256?: string;
  rootHash?: string;
  verity?: {
    rootHash: string;
    salt: string;
    hashAlgorithm: 'sha256';
    dataBlocks: number;
    dataBlockSize: number;
    hashBlockSize: number;
    hashOffset: number;
    /** Kata's kernel_verity_params for this image (configuration.toml). */
    kernelVerityParams: string;
    /** veritysetup format's report (root_hash.txt, as Kata's older image_builder.sh kept it). */
    rootHashFile: string;
    /** kernel_verity_params in root_hash_<variant>.txt, as Kata's image_builder.sh writes it. */
    paramsFile: string;
  };
  /** What was checked before the image was renamed into place. */
  checks: string[];
}

function tooLarge(o: ResolvedImageOptions, needMiB: string, req: Omit<SizeRequest, 'sizeMiB'> | undefined): OsbuilderError {
  const smallest = req ? smallestSizeMiB(req) : undefined;
  const auto = req ? planSize(req) : undefined;
  const fit = smallest ? ` (the smallest size that fits is ${smallest} MiB; automatic sizing would pick ${auto ? auto.totalBytes / MiB : '?'} MiB)` : '';
  const room = o.sizeMiB !== undefined ? regionsFor(o.sizeMiB * MiB, o.dax, o.verity) : undefined;
  return new OsbuilderError(
    'TOO_LARGE',
    `rootfs ${o.rootfs} needs ${needMiB} but --size ${o.sizeMiB} MiB leaves a root partition of ${room ? (room.root.size / MiB).toFixed(0) : 0} MiB${fit}`,
    smallest ? `use --size ${smallest}, or leave --size out to size the image automatically` : 'leave --size out to size the image automatically',
  );
}

/** DAX needs a 2 MiB multiple: the hint names the nearest larger size the rootfs fits in. */
function checkDaxAlignment(o: ResolvedImageOptions, req: Omit<SizeRequest, 'sizeMiB'>): void {
  if (!o.dax || o.sizeMiB === undefined || o.sizeMiB % 2 === 0) return;
  const next = smallestSizeMiB(req, o.sizeMiB + 1);
  throw new OsbuilderError(
    'USAGE',
    `--size ${o.sizeMiB} MiB is not a multiple of 2 MiB, the DAX alignment the nvdimm namespace needs`,
    next
      ? `use --size ${next}${next > o.sizeMiB + 1 ? ` (the smallest even size above ${o.sizeMiB} MiB the rootfs fits in)` : ''}, or leave --size out to size the image automatically`
      : 'leave --size out to size the image automatically',
  );
}

const isNoSpace = (err: unknown) =>
  err instanceof OsbuilderError &&
  err.code === 'COMMAND_FAILED' &&
  /Could not allocate|No free space|No space left|while populating file system/i.test(err.message);

/** Runs a checking tool; its failure is VERIFY_FAILED (a missing tool stays TOOL_MISSING). */
async function check(what: string, cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, args);
  } catch (err) {
    if (err instanceof OsbuilderError && err.code === 'COMMAND_FAILED') {
      throw new OsbuilderError('VERIFY_FAILED', `${what} failed: ${err.message}`, 'the image was not written; rerun with --debug and report it', {
        cause: err,
      });
    }
    throw err;
  }
}

async function createSparse(path: string, bytes: number): Promise<void> {
  await rm(path, { force: true });
  const fh = await open(path, 'w');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

/** Copies `length` bytes of `src` to `dst` at `offset`, skipping all-zero MiBs (dst is a fresh sparse file). */
async function copyInto(src: string, dst: string, offset: number, length: number): Promise<void> {
  const chunk = Buffer.alloc(MiB);
  const zero = Buffer.alloc(MiB);
  const s = await open(src, 'r');
  const d = await open(dst, 'r+');
  try {
    for (let pos = 0; pos < length; pos += MiB) {
      const n = Math.min(MiB, length - pos);
      const { bytesRead } = await s.read(chunk, 0, n, pos);
      if (bytesRead === 0) break;
      if (chunk.subarray(0, bytesRead).equals(zero.subarray(0, bytesRead))) continue;
      await d.write(chunk, 0, bytesRead, offset + pos);
    }
  } finally {
    await s.close();
    await d.close();
  }
}

async function writeAll(image: string, writes: TablePlan['writes']): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    for (const w of writes) await fh.write(w.bytes, 0, w.bytes.length, w.offset);
  } finally {
    await fh.close();
  }
}

async function mkExt4(device: string, offset: number, bytes: number, o: ResolvedImageOptions, stats: RootfsStats, ids: ImageIds): Promise<void> {
  const args = mke2fsArgs({ device, offset, bytes, rootfs: o.rootfs, uuid: ids.fsUuid, hashSeed: ids.hashSeed, inodes: ext4Inodes(bytes, stats) });
  await run('mke2fs', args, { env: mke2fsEnv(o.epoch) });
  if (o.epoch !== undefined) await normalizeExt4Times(device, offset, o.epoch);
}

interface Ctx {
  o: ResolvedImageOptions;
  stats: RootfsStats;
  ids: ImageIds;
  checks: string[];
  /** Temp files beside the image, removed at the end and on interrupt. */
  scratch: string[];
}

interface FsDone {
  size: SizePlan;
  /** A standalone copy of the root filesystem when it was built outside the image (erofs, verity). */
  fsFile?: string;
}

/** Makes ext4 at `size` (into a standalone scratch file with verity); undefined when mke2fs ran out of room. */
async function tryExt4(tmp: string, ctx: Ctx, size: SizePlan): Promise<{ standalone?: string } | undefined> {
  const standalone = ctx.o.verity ? `${tmp}.rootfs` : undefined;
  if (standalone) ctx.scratch.push(standalone);
  try {
    await createSparse(tmp, size.totalBytes);
    if (standalone) await createSparse(standalone, size.root.size);
    await step(`mke2fs -d: ext4 ${(size.root.size / MiB).toFixed(0)} MiB in a ${size.totalBytes / MiB} MiB image`, () =>
      mkExt4(standalone ?? tmp, standalone ? 0 : size.root.start, size.root.size, ctx.o, ctx.stats, ctx.ids),
    );
    return standalone ? { standalone } : {};
  } catch (err) {
    if (isNoSpace(err)) return undefined;
    throw err;
  }
}

/**
 * ext4 straight into the image at the partition offset, or into a scratch file
 * when verity needs the data at offset 0. The estimate sees what a scan of the
 * tree shows; should mke2fs still run out of room (extended attribute blocks,
 * say), larger sizes are tried like Kata's trials: automatic sizing keeps the
 * first that works, an explicit --size fails with that size as its hint.
 */
async function buildExt4(tmp: string, ctx: Ctx, first: SizePlan): Promise<FsDone> {
  const { o } = ctx;
  const automatic = o.sizeMiB === undefined;
  let size = first;
  let made = await tryExt4(tmp, ctx, size);
  for (let attempt = 0; !made && attempt < 3; attempt++) {
    const next = grownSize(size, o.dax, o.verity, automatic);
    if (!next) break;
    size = next;
    made = await tryExt4(tmp, ctx, size);
  }
  if (!made) {
    throw new OsbuilderError(
      'TOO_LARGE',
      `mke2fs -d ran out of room for ${o.rootfs} even in a ${size.totalBytes / MiB} MiB image, far above the size estimate of ${first.totalBytes / MiB} MiB`,
      'rerun with --debug and report it: something in the rootfs takes space the estimate does not see',
    );
  }
  if (!automatic && size !== first) {
    throw new OsbuilderError(
      'TOO_LARGE',
      `mke2fs -d ran out of room for ${o.rootfs} in the root partition of ${(first.root.size / MiB).toFixed(0)} MiB that --size ${o.sizeMiB} leaves (the rootfs needs more than its files show, e.g. extended attribute blocks); it fits in ${size.totalBytes / MiB} MiB`,
      `use --size ${size.totalBytes / MiB}, or leave --size out to size the image automatically`,
    );
  }
  const { standalone } = made;
  await step('e2fsck -fn', () => check('e2fsck of the new filesystem', 'e2fsck', e2fsckArgs(standalone ?? tmp, standalone ? 0 : size.root.start)));
  ctx.checks.push('e2fsck -fn clean');
  return { size, ...(standalone ? { fsFile: standalone } : {}) };
}

async function buildErofs(tmp: string, ctx: Ctx): Promise<FsDone> {
  const { o } = ctx;
  const fsFile = `${tmp}.erofs`;
  ctx.scratch.push(fsFile);
  await rm(fsFile, { force: true });
  await step('mkfs.erofs', () => run('mkfs.erofs', mkfsErofsArgs(fsFile, o.rootfs, ctx.ids.fsUuid), { env: mkfsErofsEnv(o.epoch) }));
  await step('fsck.erofs', () => check('fsck.erofs of the new filesystem', 'fsck.erofs', [fsFile]));
  ctx.checks.push('fsck.erofs clean');
  const fsBytes = (await stat(fsFile)).size;
  const req = { dax: o.dax, verity: o.verity, fits: (root: number) => root >= fsBytes, lowerBound: fsBytes };
  checkDaxAlignment(o, req);
  const size = planSize({ ...req, ...(o.sizeMiB !== undefined ? { sizeMiB: o.sizeMiB } : {}) });
  if (!size) throw tooLarge(o, `${(fsBytes / MiB).toFixed(1)} MiB as erofs`, req);
  // The verity data area is the whole partition: pad the filesystem with zeros to it.
  const fh = await open(fsFile, 'r+');
  try {
    await fh.truncate(size.root.size);
  } finally {
    await fh.close();
  }
  await createSparse(tmp, size.totalBytes);
  return { size, fsFile };
}

type VerityInfo = Omit<NonNullable<ImageResult['verity']>, 'rootHashFile' | 'paramsFile'> & { report: string };

async function addVerity(tmp: string, fsFile: string, size: SizePlan, ctx: Ctx): Promise<VerityInfo> {
  const hash = size.hash!;
  const epoch = ctx.o.epoch;
  const spec: VeritySpec = {
    data: fsFile,
    hash: tmp,
    hashOffset: hash.start,
    dataBlocks: size.root.size / BLOCK,
    ...(epoch !== undefined ? { salt: ctx.ids.veritySalt } : {}),
  };
  const formatted = await step('veritysetup format', () => run('veritysetup', verityFormatArgs(spec)));
  const out = parseVerityFormat(formatted.stdout);
  await step('veritysetup verify', () => check('veritysetup verify of the hash tree', 'veritysetup', verityVerifyArgs(spec, out.salt, out.rootHash)));
  ctx.checks.push('veritysetup verify');
  const params = { rootHash: out.rootHash, salt: out.salt, dataBlocks: spec.dataBlocks, dataBlockSize: BLOCK, hashBlockSize: BLOCK };
  return { ...params, hashAlgorithm: 'sha256', hashOffset: hash.start, kernelVerityParams: formatVerityParams(params), report: formatted.stdout };
}

/** Beside the image: veritysetup's report (root_hash.txt) and kernel_verity_params (root_hash_<variant>.txt). */
export function verityFiles(o: Pick<ResolvedImageOptions, 'output' | 'buildVariant'>): [string, string] {
  const dir = dirname(o.output);
  return [join(dir, 'root_hash.txt'), join(dir, `root_hash_${o.buildVariant}.txt`)];
}

function withoutReport(v: VerityInfo): Omit<VerityInfo, 'report'> {
  const { report: _report, ...rest } = v;
  return rest;
}

/** Refuses a bad rootfs or output before any work. */
async function checkPaths(o: ResolvedImageOptions): Promise<void> {
  await checkRootfsDir(o.rootfs, o.output);
  await checkOutputPath(o.output, { flag: '-o', name: 'kata-containers.img' });
  // e2fsck (like every e2fsprogs tool) cuts its device argument at the first "?" anywhere in the path.
  if (o.fsType === 'ext4' && o.output.includes('?')) {
    throw new OsbuilderError(
      'OUTPUT_INVALID',
      `output path ${o.output} contains "?", which e2fsprogs reads as an option separator`,
      'choose an output path (directory and file name) without "?"',
    );
  }
}

/** ext4: the size, known before anything is written; erofs: a --size too small for the file data is refused now. */
function planFsSize(o: ResolvedImageOptions, stats: RootfsStats): SizePlan | undefined {
  const free = o.rootFreeSpaceMiB * MiB;
  const files = ((stats.dataBlocks * BLOCK) / MiB).toFixed(1);
  if (o.fsType === 'ext4') {
    const req = { dax: o.dax, verity: o.verity, fits: (root: number) => ext4Fit(root, stats, free).fits, lowerBound: stats.dataBlocks * BLOCK + free };
    checkDaxAlignment(o, req);
    const size = planSize({ ...req, ...(o.sizeMiB !== undefined ? { sizeMiB: o.sizeMiB } : {}) });
    if (!size) throw tooLarge(o, `about ${files} MiB of files${free ? ` + ${o.rootFreeSpaceMiB} MiB free space` : ''} + ext4 metadata`, req);
    return size;
  }
  if (o.sizeMiB !== undefined) {
    // erofs stores every file's data in whole blocks (-Enoinline_data): a lower bound known before mkfs.erofs.
    const room = regionsFor(o.sizeMiB * MiB, o.dax, o.verity);
    if (!room || room.root.size < stats.dataBlocks * BLOCK) throw tooLarge(o, `at least ${files} MiB of file data`, undefined);
  }
  return undefined;
}

/** The checked filesystem (and its verity tree) copied into the root partition. */
async function placeFilesystem(tmp: string, done: FsDone, ctx: Ctx): Promise<VerityInfo | undefined> {
  if (!done.fsFile) return undefined;
  const { size } = done;
  const verity = ctx.o.verity ? await addVerity(tmp, done.fsFile, size, ctx) : undefined;
  await step('copy the filesystem into the root partition', async () => {
    await copyInto(done.fsFile!, tmp, size.root.start, size.root.size);
    await check('comparing the root partition with the checked filesystem', 'cmp', [
      '-n',
      String(size.root.size),
      done.fsFile!,
      tmp,
      '0',
      String(size.root.start),
    ]);
  });
  ctx.checks.push('root partition identical to the checked filesystem (cmp)');
  return verity;
}

/** The partition tables (and the DAX block) written and read back. */
async function writeTables(tmp: string, size: SizePlan, ctx: Ctx): Promise<TablePlan> {
  const tables = planTables(size, { dax: ctx.o.dax, table: ctx.o.partitionTable, ids: ctx.ids });
  await writeAll(tmp, tables.writes);
  await step('sfdisk -J', () => verifyTables(tmp, tables, size.totalBytes, ctx.scratch));
  ctx.checks.push(...tables.views.map((v) => `sfdisk reads the ${v.label} table at byte ${v.offset} as planned`));
  if (ctx.o.dax) {
    await verifyDax(tmp, size.totalBytes);
    ctx.checks.push('nd_pfn_sb at 4 KiB passes nd_pfn_validate checks');
  }
  return tables;
}

/** The image in `tmp`, its verity files beside the output, and the result. */
async function fillImage(tmp: string, ctx: Ctx, ext4Size: SizePlan | undefined): Promise<ImageResult> {
  const { o, stats, ids } = ctx;
  const done = o.fsType === 'ext4' ? await buildExt4(tmp, ctx, ext4Size!) : await buildErofs(tmp, ctx);
  const verity = await placeFilesystem(tmp, done, ctx);
  const tables = await writeTables(tmp, done.size, ctx);
  const sha = o.sha256 ? await step('sha256', () => sha256File(tmp)) : undefined;
  const [rootHashFile, paramsFile] = verityFiles(o);
  if (verity) {
    await atomicOutput(rootHashFile, (t) => writeFile(t, verity.report.split(tmp).join(o.output)));
    await atomicOutput(paramsFile, (t) => writeFile(t, `${verity.kernelVerityParams}\n`));
  }
  return {
    path: o.output,
    sizeBytes: done.size.totalBytes,
    fsType: o.fsType,
    dax: o.dax,
    partitionTable: o.partitionTable,
    partitions: tables.partitions,
    uuid: ids.fsUuid,
    diskIds: tables.views.map((v) => v.id),
    reproducible: o.epoch !== undefined,
    rootfs: { path: o.rootfs, inodes: stats.inodes, fileBytes: stats.fileBytes },
    ...(sha ? { sha256: sha } : {}),
    ...(verity ? { rootHash: verity.rootHash, verity: { ...withoutReport(verity), rootHashFile, paramsFile } } : {}),
    checks: ctx.checks,
  } satisfies ImageResult;
}

/** Runs `fn` with the scratch files removed at the end, on interrupt, and (synchronously) at exit. */
async function withScratch<T>(ctx: Ctx, fn: () => Promise<T>): Promise<T> {
  const cleanScratch = async () => {
    for (const f of ctx.scratch) await rm(f, { force: true });
  };
  const unregister = onInterrupt(cleanScratch);
  // Interrupt handlers are asynchronous: a file step already in flight can
  // create a temp file after they removed it. The exit hook runs last, synchronously.
  const lastResort = () => {
    for (const f of [tempPathFor(ctx.o.output), ...verityFiles(ctx.o).map(tempPathFor), ...ctx.scratch]) rmSync(f, { force: true });
  };
  process.on('exit', lastResort);
  try {
    return await fn();
  } finally {
    await cleanScratch();
    unregister();
    process.off('exit', lastResort);
  }
}

export async function buildImage(options: BuildImageOptions): Promise<ImageResult> {
  const o = resolveImageOptions(options);
  await checkPaths(o);
  if (!o.skipAgentCheck) await step('check init and agent', () => checkRootfsContent(o.rootfs));
  const stats = await step('scan rootfs', async () => scanRootfs(o.rootfs));
  const ids = imageIds(o.epoch);
  const ext4Size = planFsSize(o, stats);
  const ctx: Ctx = { o, stats, ids, checks: [], scratch: [] };
  return withScratch(ctx, () => atomicOutput(o.output, (tmp) => fillImage(tmp, ctx, ext4Size)));
}
