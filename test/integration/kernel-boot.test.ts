/**
 * The default guest kernel, built by our kernel stage (cached), boots under
 * QEMU TCG: from a busybox initrd to a marker line, and from an ext4 image with
 * Kata's DAX header exposed as an nvdimm, mounted with dax as the root.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildInitrd } from '../../initrd-builder/index.js';
import { buildImage } from '../../image-builder/index.js';
import { makeBusyboxRootfs, makeTempDir } from '../support/fixtures.js';
import { guestKernel, runQemu, type GuestKernel } from '../support/kernel.js';

let kernel: GuestKernel;
let work: string;

beforeAll(async () => {
  kernel = await guestKernel();
  work = await makeTempDir('osb-kernel-boot-');
});

describe('guest kernel boots', () => {
  it('from a busybox initrd to the marker (virtio, ACPI poweroff)', async () => {
    const marker = 'OSBUILDER-KERNEL-INITRD-OK';
    const rootfs = join(work, 'initrd-root');
    await mkdir(rootfs);
    await makeBusyboxRootfs(rootfs, {
      init: [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'mount -t sysfs sysfs /sys',
        `echo "${marker} $(uname -r) $(cat /proc/cmdline | grep -c console=ttyS0)"`,
        'poweroff -f',
        '',
      ].join('\n'),
    });
    const initrd = join(work, 'busybox.initrd');
    await buildInitrd({ rootfs, output: initrd, compression: 'gzip' });
    const run = await runQemu(
      [
        '-machine',
        'q35',
        '-m',
        '256M',
        '-smp',
        '1',
        '-kernel',
        kernel.bzImage,
        '-initrd',
        initrd,
        '-append',
        'console=ttyS0 panic=-1 tsc=reliable no_timer_check rcupdate.rcu_expedited=1 cryptomgr.notests',
      ],
      new RegExp(`${marker} \\S+ 1`),
    );
    expect(run.matched, run.output.slice(-3000)).toBeDefined();
    expect(run.matched).toContain(`${marker} ${kernel.release} 1`);
    expect(kernel.release).toMatch(/^6\.1\.\d+-kata$/);
  });

  it('from an nvdimm ext4 image with the DAX header, root mounted with dax', async () => {
    const marker = 'OSBUILDER-KERNEL-DAX-OK';
    const rootfs = join(work, 'image-root');
    await mkdir(rootfs);
    await makeBusyboxRootfs(rootfs, {
      init: [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'echo "--- /proc/mounts"',
        'cat /proc/mounts',
        'echo "--- end"',
        `echo "${marker} $(grep -c ' / ext4 .*dax' /proc/mounts)"`,
        'poweroff -f',
        '',
      ].join('\n'),
    });
    const image = join(work, 'kata.img');
    const img = await buildImage({ rootfs, output: image, skipAgentCheck: true, sourceDateEpoch: 1700000000 });
    expect(img.dax).toBe(true);
    const size = (await stat(image)).size;
    const run = await runQemu(
      [
        '-machine',
        'q35,nvdimm=on',
        '-m',
        '512M,slots=2,maxmem=4G',
        '-smp',
        '1',
        '-object',
        `memory-backend-file,id=mem0,mem-path=${image},size=${size},readonly=on`,
        '-device',
        'nvdimm,id=nv0,memdev=mem0,unarmed=on',
        '-kernel',
        kernel.bzImage,
        '-append',
        'root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4 console=ttyS0 panic=-1 init=/sbin/init',
      ],
      new RegExp(`${marker} \\d`),
    );
    expect(run.matched, run.output.slice(-4000)).toBeDefined();
    const mounts = run.output.slice(run.output.indexOf('--- /proc/mounts'), run.output.indexOf('--- end'));
    const root = mounts.split('\n').find((l) => / \/ ext4 /.test(l));
    expect(root, mounts).toBeDefined();
    expect(root).toMatch(/^\/dev\/(root|pmem0p1) \/ ext4 ro[, ]/);
    expect(root).toMatch(/[ ,]dax(=always)?[, ]/);
    expect(run.matched).toBe(`${marker} 1`);
    expect(run.output).toMatch(/pmem0: p1/);
  });
});
