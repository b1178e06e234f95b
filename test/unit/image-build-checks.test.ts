/**
 * Checks of the image executor that need no mke2fs: output paths e2fsprogs
 * would misread are refused before anything is written, and the temporary
 * nvdimm view that sfdisk reads is handed to the caller's cleanup list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '../support/fixtures.js';
import { OsbuilderError } from '../../core/errors.js';
import { buildImage } from '../../image-builder/index.js';
import { imageIds } from '../../image-builder/ids.js';
import { planTables } from '../../image-builder/layout.js';
import { regionsFor } from '../../image-builder/size.js';
import { verifyTables } from '../../image-builder/verify.js';
import { failure } from '../support/errors.js';
import { MiB } from '../../core/vocab.js';

let work: string;
let rootfs: string;

beforeAll(async () => {
  work = await makeTempDir('osb-image-checks-');
  rootfs = join(work, 'rootfs');
  await mkdir(rootfs);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('output paths e2fsck cannot open', () => {
  it('refuses a "?" in the directory or the file name (e2fsprogs cut the path there), leaving nothing behind', async () => {
    const dir = join(work, 'a?b');
    await mkdir(dir);
    for (const output of [join(dir, 'kata.img'), join(work, 'kata?.img')]) {
      const e = await failure(buildImage({ rootfs, output, skipAgentCheck: true, sourceDateEpoch: null }));
      expect(e.code).toBe('OUTPUT_INVALID');
      expect(e.message).toContain(`output path ${output} contains "?"`);
    }
    expect(await readdir(dir)).toEqual([]);
    expect((await readdir(work)).sort()).toEqual(['a?b', 'rootfs']);
  });
});

describe('verifyTables', () => {
  it('reads both DAX views with sfdisk; the view file is listed for cleanup, then removed', async () => {
    const total = 128 * MiB;
    const size = regionsFor(total, true, false)!;
    const plan = planTables(size, { dax: true, table: 'mbr', ids: imageIds(1700000000) });
    const image = join(work, 'tables.img');
    const fh = await open(image, 'w');
    try {
      await fh.truncate(total);
      for (const w of plan.writes) await fh.write(w.bytes, 0, w.bytes.length, w.offset);
    } finally {
      await fh.close();
    }
    const scratch: string[] = [];
    await verifyTables(image, plan, total, scratch);
    expect(scratch).toEqual([`${image}.view-${2 * MiB}`]);
    expect(await stat(scratch[0]!).catch(() => undefined)).toBeUndefined();

    // a view that is not as planned is VERIFY_FAILED, and its view file is still removed
    const other = { ...plan, views: plan.views.map((v) => (v.offset === 0 ? v : { ...v, id: '0x00000001' })) };
    const left: string[] = [];
    const e = await failure(verifyTables(image, other, total, left));
    expect(e.code).toBe('VERIFY_FAILED');
    expect(e.message).toMatch(/partition table at byte 2097152 .* not as planned: disk id 0x[0-9a-f]{8}, expected 0x00000001/);
    expect(left).toEqual([`${image}.view-${2 * MiB}`]);
    expect(await stat(left[0]!).catch(() => undefined)).toBeUndefined();
    await rm(image, { force: true });
  });
});
