/**
 * The DAX info block of a real image, read by C code built from the kernel's
 * own sources (Debian's linux-source-6.1): struct nd_pfn_sb from
 * drivers/nvdimm/pfn.h, struct nd_gen_sb from nd.h, nd_fletcher64 from core.c
 * and nd_sb_checksum from claim.c, compiled with gcc. The program checks the
 * block the way nd_pfn_validate() starts (signature, checksum, parent uuid,
 * mode, alignment) and prints the fields and offsets it saw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildImage } from '../../image-builder/index.js';
import { PFN_SB_FIELDS } from '../../image-builder/dax.js';
import { makeBusyboxRootfs, makeTempDir } from '../support/fixtures.js';
import { nvdimmKernelSources } from '../support/image.js';

let work: string;
let checker: string;

/** The text of a C definition starting at `start` up to its matching closing brace (and ';' for structs). */
function cDefinition(source: string, start: RegExp): string {
  const m = start.exec(source);
  if (!m) throw new Error(`${start} not found in the kernel source`);
  let depth = 0;
  for (let i = source.indexOf('{', m.index); i < source.length; i++) {
    if (source[i] === '{') depth++;
    if (source[i] === '}' && --depth === 0) {
      const end = source[i + 1] === ';' ? i + 2 : i + 1;
      return source.slice(m.index, end);
    }
  }
  throw new Error(`unbalanced braces after ${start}`);
}

beforeAll(async () => {
  work = await makeTempDir('osb-image-dax-');
  const src = await nvdimmKernelSources();
  const pfnH = (await readFile(join(src, 'pfn.h'), 'utf8')).replace(/^#include .*$/gm, '');
  const ndH = await readFile(join(src, 'nd.h'), 'utf8');
  const coreC = await readFile(join(src, 'core.c'), 'utf8');
  const claimC = await readFile(join(src, 'claim.c'), 'utf8');
  const program = `
#include <stdio.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdbool.h>
typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;
typedef uint16_t __le16; typedef uint32_t __le32; typedef uint64_t __le64;
#define SZ_4K 0x1000
#define le32_to_cpu(x) (x)
#define le64_to_cpu(x) (x)
#define BUILD_BUG_ON(x)
/* ---- drivers/nvdimm/pfn.h ---- */
${pfnH}
/* ---- drivers/nvdimm/nd.h ---- */
${cDefinition(ndH, /^struct nd_gen_sb \{/m)}
${cDefinition(ndH, /^enum nd_pfn_mode \{/m)};
/* ---- drivers/nvdimm/core.c ---- */
${cDefinition(coreC, /^u64 nd_fletcher64\(/m)}
/* ---- drivers/nvdimm/claim.c ---- */
${cDefinition(claimC, /^u64 nd_sb_checksum\(/m)}

int main(int argc, char **argv) {
  struct nd_pfn_sb sb;
  FILE *f = fopen(argv[1], "rb");
  if (!f || fseek(f, SZ_4K, SEEK_SET) || fread(&sb, sizeof(sb), 1, f) != 1) return 2;
  fclose(f);
  static const u8 null_uuid[16];
  int sig_ok = memcmp(sb.signature, PFN_SIG, PFN_SIG_LEN) == 0;
  u64 checksum = le64_to_cpu(sb.checksum);
  sb.checksum = 0;
  int checksum_ok = checksum == nd_sb_checksum((struct nd_gen_sb *) &sb);
  sb.checksum = checksum;
  int parent_ok = memcmp(sb.parent_uuid, null_uuid, 16) == 0;
  u32 mode = le32_to_cpu(sb.mode);
  int mode_ok = mode == PFN_MODE_RAM || mode == PFN_MODE_PMEM;
  printf("{\\"sizeof\\":%zu,\\"sig_ok\\":%d,\\"checksum_ok\\":%d,\\"parent_uuid_null\\":%d,\\"mode_ok\\":%d,", sizeof(sb), sig_ok, checksum_ok, parent_ok, mode_ok);
  printf("\\"mode\\":%u,\\"version_major\\":%u,\\"version_minor\\":%u,\\"dataoff\\":%llu,\\"npfns\\":%llu,\\"align\\":%u,\\"start_pad\\":%u,\\"end_trunc\\":%u,\\"flags\\":%u,",
    mode, sb.version_major, sb.version_minor, (unsigned long long) sb.dataoff, (unsigned long long) sb.npfns, sb.align, sb.start_pad, sb.end_trunc, sb.flags);
  printf("\\"offsets\\":{\\"signature\\":%zu,\\"uuid\\":%zu,\\"parent_uuid\\":%zu,\\"flags\\":%zu,\\"version_major\\":%zu,\\"version_minor\\":%zu,\\"dataoff\\":%zu,\\"npfns\\":%zu,\\"mode\\":%zu,\\"start_pad\\":%zu,\\"end_trunc\\":%zu,\\"align\\":%zu,\\"page_size\\":%zu,\\"page_struct_size\\":%zu,\\"padding\\":%zu,\\"checksum\\":%zu}}\\n",
    offsetof(struct nd_pfn_sb, signature), offsetof(struct nd_pfn_sb, uuid), offsetof(struct nd_pfn_sb, parent_uuid), offsetof(struct nd_pfn_sb, flags),
    offsetof(struct nd_pfn_sb, version_major), offsetof(struct nd_pfn_sb, version_minor), offsetof(struct nd_pfn_sb, dataoff), offsetof(struct nd_pfn_sb, npfns),
    offsetof(struct nd_pfn_sb, mode), offsetof(struct nd_pfn_sb, start_pad), offsetof(struct nd_pfn_sb, end_trunc), offsetof(struct nd_pfn_sb, align),
    offsetof(struct nd_pfn_sb, page_size), offsetof(struct nd_pfn_sb, page_struct_size), offsetof(struct nd_pfn_sb, padding), offsetof(struct nd_pfn_sb, checksum));
  return 0;
}
`;
  await writeFile(join(work, 'pfncheck.c'), program);
  checker = join(work, 'pfncheck');
  // -fno-strict-aliasing as the kernel builds: nd_fletcher64 reads the struct through a u32 pointer.
  await execa('gcc', ['-O2', '-fno-strict-aliasing', '-Wall', '-Werror', '-Wno-unused-function', '-o', checker, join(work, 'pfncheck.c')]);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('DAX info block against the kernel sources', () => {
  it('an image made by buildImage passes the kernel checks and carries the values nsdax writes', async () => {
    const root = await makeBusyboxRootfs(join(work, 'root'));
    const img = join(work, 'dax.img');
    await buildImage({ rootfs: root, output: img, sourceDateEpoch: 1700000000 });
    const r = JSON.parse(String((await execa(checker, [img])).stdout));
    expect(r).toMatchObject({ sizeof: 4096, sig_ok: 1, checksum_ok: 1, parent_uuid_null: 1, mode_ok: 1 });
    expect(r).toMatchObject({ mode: 1, version_major: 0, version_minor: 2, dataoff: 2097152, npfns: 0, align: 2097152, start_pad: 0, end_trunc: 0, flags: 0 });
    expect(r.offsets).toEqual(PFN_SB_FIELDS);
  });

  it('a damaged block fails the kernel checksum', async () => {
    const img = join(work, 'dax.img');
    const { open } = await import('node:fs/promises');
    const fh = await open(img, 'r+');
    await fh.write(Buffer.from([0x01]), 0, 1, 4096 + 200);
    await fh.close();
    const r = JSON.parse(String((await execa(checker, [img])).stdout));
    expect(r).toMatchObject({ sig_ok: 1, checksum_ok: 0 });
  });
});
