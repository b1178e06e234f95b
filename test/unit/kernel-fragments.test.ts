import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fragmentFiles,
  fragmentsHash,
  mergeFragments,
  parseFragment,
  parseIgnoreList,
  readConfigVersion,
  readIgnoreList,
  renderRequested,
  selectFragments,
  FRAGMENTS_DIR,
} from '../../kernel/fragments.js';
import type { Arch } from '../../core/arch.js';
import { codeOf } from '../support/errors.js';

/**
 * kata_config_version -> sha256 of every fragment file (fragmentsHash). When the
 * fragments change, bump kernel/fragments/kata_config_version and add a line here.
 */
const RECORDED: Record<string, string> = {
  '1': 'b0c7e836d9d0e3593cf5d6b31e788535e69a1b6cbf9a046e32fc355ff0995ed4',
  '2': '7df0ca884beefe21b9cbb7b59708088fc6153555e39a26cc56a0cd74d12fd07e',
  '3': '4d19e017984df2182365d1a4b56ea15c96d06b32066d1a664bf91593f5532f87',
};

describe('parseFragment', () => {
  it('reads y/m/numbers/strings and "is not set" lines with their line numbers', () => {
    const f = parseFragment('x.conf', '# comment\n\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=0x10\nCONFIG_E="hello world"\nCONFIG_F=-3\n');
    expect(f.entries.map((e) => [e.symbol, e.value, e.line])).toEqual([
      ['A', 'y', 3],
      ['B', 'm', 4],
      ['C', 'n', 5],
      ['D', '0x10', 6],
      ['E', '"hello world"', 7],
      ['F', '-3', 8],
    ]);
    expect(f.arches).toBeUndefined();
  });

  it('rejects malformed lines, bad values and a symbol set twice in one fragment', () => {
    expect(codeOf(() => parseFragment('x.conf', 'CONFIG_A y\n'))).toBe('KERNEL_CONFIG');
    expect(codeOf(() => parseFragment('x.conf', 'CONFIG_A=yes\n'))).toBe('KERNEL_CONFIG');
    expect(codeOf(() => parseFragment('x.conf', 'CONFIG_A="unterminated\n'))).toBe('KERNEL_CONFIG');
    expect(codeOf(() => parseFragment('x.conf', 'CONFIG_A=y\nCONFIG_A=m\n'))).toBe('KERNEL_CONFIG');
    try {
      parseFragment('bad.conf', 'CONFIG_OK=y\nEXT4=y\n');
    } catch (err) {
      expect((err as Error).message).toContain('bad.conf:2');
    }
  });

  it('reads the arch header (include and exclude lists)', () => {
    expect(parseFragment('a', '# arch: x86_64 aarch64\nCONFIG_A=y\n').arches).toEqual({ only: ['x86_64', 'aarch64'], not: [] });
    expect(parseFragment('a', '# arch: !s390x\nCONFIG_A=y\n').arches).toEqual({ only: [], not: ['s390x'] });
  });
});

describe('mergeFragments', () => {
  it('lets later fragments win and reports every override', () => {
    const a = parseFragment('common/a.conf', 'CONFIG_MODULES=n\nCONFIG_X=y\n'.replace('CONFIG_MODULES=n', '# CONFIG_MODULES is not set'));
    const b = parseFragment('gpu/b.conf', 'CONFIG_MODULES=y\nCONFIG_X=y\nCONFIG_Y=m\n');
    const m = mergeFragments([a, b]);
    expect(m.requested.map((r) => `${r.symbol}=${r.value}@${r.file}`)).toEqual(['MODULES=y@gpu/b.conf', 'X=y@gpu/b.conf', 'Y=m@gpu/b.conf']);
    expect(m.overrides).toHaveLength(1);
    expect(m.overrides[0]!.symbol).toBe('MODULES');
    expect(m.overrides[0]!.from.file).toBe('common/a.conf');
    expect(m.overrides[0]!.to.value).toBe('y');
    expect(renderRequested(m.requested)).toBe('CONFIG_MODULES=y\nCONFIG_X=y\nCONFIG_Y=m\n');
  });

  it('renders "is not set" for n', () => {
    expect(renderRequested(parseFragment('a', '# CONFIG_Q is not set\n').entries)).toBe('# CONFIG_Q is not set\n');
  });
});

describe('selectFragments', () => {
  const dir = mkdtempSync(join(tmpdir(), 'osb-frag-'));
  for (const d of ['common', 'x86_64', 'arm64', 'gpu/nvidia', 'confidential/tdx']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'common/b.conf'), 'CONFIG_B=y\n');
  writeFileSync(join(dir, 'common/a.conf'), 'CONFIG_A=y\n');
  writeFileSync(join(dir, 'common/notarm.conf'), '# arch: !aarch64\nCONFIG_NOTARM=y\n');
  writeFileSync(join(dir, 'x86_64/x.conf'), 'CONFIG_X86=y\n');
  writeFileSync(join(dir, 'arm64/a.conf'), 'CONFIG_ARM=y\n');
  writeFileSync(join(dir, 'gpu/nvidia/n.conf'), 'CONFIG_MODULES=y\n');
  writeFileSync(join(dir, 'gpu/nvidia/only-x86.conf'), '# arch: x86_64\nCONFIG_PCI_MMCONFIG=y\n');
  writeFileSync(join(dir, 'confidential/tdx/t.conf'), '# arch: x86_64\nCONFIG_TDX=y\n');
  writeFileSync(join(dir, 'extra.conf'), 'CONFIG_EXTRA=y\n');

  it('orders common (sorted), arch, gpu, confidential, then extra fragments', () => {
    const names = selectFragments({ dir, arch: 'x86_64', gpu: 'nvidia', confidential: 'tdx', extra: [join(dir, 'extra.conf')] }).map((f) => f.name);
    expect(names).toEqual([
      'common/a.conf',
      'common/b.conf',
      'common/notarm.conf',
      'x86_64/x.conf',
      'gpu/nvidia/n.conf',
      'gpu/nvidia/only-x86.conf',
      'confidential/tdx/t.conf',
      join(dir, 'extra.conf'),
    ]);
  });

  it('applies arch headers (kernel or Kata arch names)', () => {
    const names = selectFragments({ dir, arch: 'aarch64', gpu: 'nvidia' }).map((f) => f.name);
    expect(names).toEqual(['common/a.conf', 'common/b.conf', 'arm64/a.conf', 'gpu/nvidia/n.conf']);
  });

  it('refuses a confidential type without fragments for the arch, and a missing extra fragment', () => {
    expect(codeOf(() => selectFragments({ dir, arch: 'aarch64', confidential: 'tdx' }))).toBe('UNSUPPORTED');
    expect(codeOf(() => selectFragments({ dir, arch: 'x86_64', extra: [join(dir, 'nope.conf')] }))).toBe('INPUT_NOT_FOUND');
  });
});

describe('ignore list', () => {
  it('needs a reason on every line', () => {
    const m = parseIgnoreList('# header\nCONFIG_FOO added in 6.2\n\n');
    expect(m.get('FOO')?.reason).toBe('added in 6.2');
    expect(codeOf(() => parseIgnoreList('CONFIG_FOO\n'))).toBe('KERNEL_CONFIG');
    expect(codeOf(() => parseIgnoreList('FOO because\n'))).toBe('KERNEL_CONFIG');
  });

  it('the shipped list parses', () => {
    expect(readIgnoreList().size).toBeGreaterThan(0);
  });
});

describe('shipped fragments', () => {
  const arches: Arch[] = ['x86_64', 'aarch64', 'ppc64le', 's390x'];

  it('parse for every arch and variant, with no conflicting values inside common + arch', () => {
    for (const arch of arches) {
      const base = mergeFragments(selectFragments({ arch }));
      expect(base.overrides, `${arch}: ${JSON.stringify(base.overrides)}`).toEqual([]);
      expect(base.requested.length).toBeGreaterThan(100);
      const gpu = mergeFragments(selectFragments({ arch, gpu: 'nvidia' }));
      // The GPU variant turns modules on over common's "# CONFIG_MODULES is not set", and with them
      // FIPS mode off (6.1 would need signed modules); nothing else conflicts.
      expect(gpu.overrides.map((o) => o.symbol)).toEqual(['MODULES', 'CRYPTO_FIPS']);
    }
    for (const tee of ['tdx', 'sev', 'snp'] as const) {
      expect(mergeFragments(selectFragments({ arch: 'x86_64', confidential: tee })).overrides).toEqual([]);
    }
  });

  it('the default x86_64 guest asks for what a Kata guest and systemd need', () => {
    const req = new Map(mergeFragments(selectFragments({ arch: 'x86_64' })).requested.map((r) => [r.symbol, r.value]));
    const need = [
      '64BIT',
      'PCI',
      'VIRTIO_PCI',
      'VIRTIO_BLK',
      'SCSI_VIRTIO',
      'VIRTIO_NET',
      'VIRTIO_CONSOLE',
      'VSOCKETS',
      'VIRTIO_VSOCKETS',
      'HW_RANDOM_VIRTIO',
      'NET_9P_VIRTIO',
      '9P_FS',
      'EXT4_FS',
      'XFS_FS',
      'EROFS_FS',
      'OVERLAY_FS',
      'DEVTMPFS',
      'DEVTMPFS_MOUNT',
      'TMPFS',
      'PROC_FS',
      'SYSFS',
      'CGROUPS',
      'MEMCG',
      'CGROUP_PIDS',
      'NAMESPACES',
      'USER_NS',
      'NET_NS',
      'SECCOMP_FILTER',
      'NETFILTER',
      'NF_CONNTRACK',
      'LIBNVDIMM',
      'BLK_DEV_PMEM',
      'ACPI_NFIT',
      'DAX',
      'FS_DAX',
      'ACPI',
      'HOTPLUG_PCI_PCIE',
      'BLK_DEV_INITRD',
      'RD_GZIP',
      'RD_ZSTD',
      'SERIAL_8250_CONSOLE',
      'INOTIFY_USER',
      'SIGNALFD',
      'TIMERFD',
      'EPOLL',
      'FHANDLE',
      'UNIX',
      'AUTOFS_FS',
      'TMPFS_POSIX_ACL',
      'TMPFS_XATTR',
      'CGROUP_BPF',
      'BPF_SYSCALL',
      'BINFMT_ELF',
      'BINFMT_SCRIPT',
      'TTY',
      'PRINTK',
    ];
    for (const s of need) expect(req.get(s), s).toBe('y');
    expect(req.get('MODULES')).toBe('n');
    const gpu = new Map(mergeFragments(selectFragments({ arch: 'x86_64', gpu: 'nvidia' })).requested.map((r) => [r.symbol, r.value]));
    for (const s of ['HOTPLUG_PCI_PCIE', 'HOTPLUG_PCI_SHPC', 'MODULES', 'MODULE_UNLOAD', 'PCI_MMCONFIG', 'VFIO', 'VFIO_PCI']) expect(gpu.get(s), s).toBe('y');
    expect(gpu.get('DRM_NOUVEAU')).toBe('n');
  });

  it('changing a fragment requires a new kata_config_version (recorded hash)', () => {
    const version = readConfigVersion();
    const hash = fragmentsHash();
    const files = fragmentFiles();
    expect(files).toContain('ignore.list');
    expect(files).not.toContain('kata_config_version');
    expect(
      RECORDED[version],
      `kata_config_version ${version} has no recorded fragments hash: add  '${version}': '${hash}'  to RECORDED in this test`,
    ).toBeDefined();
    expect(
      hash,
      `fragments changed but kata_config_version is still ${version}: bump kernel/fragments/kata_config_version and record '${Number(version) + 1}': '${hash}'`,
    ).toBe(RECORDED[version]);
  });

  it('fragmentsHash covers every file under the fragments dir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'osb-fraghash-'));
    mkdirSync(join(dir, 'common'));
    writeFileSync(join(dir, 'common/a.conf'), 'CONFIG_A=y\n');
    writeFileSync(join(dir, 'kata_config_version'), '1\n');
    const h1 = fragmentsHash(dir);
    writeFileSync(join(dir, 'kata_config_version'), '2\n');
    expect(fragmentsHash(dir)).toBe(h1);
    writeFileSync(join(dir, 'ignore.list'), 'CONFIG_B why\n');
    const h2 = fragmentsHash(dir);
    expect(h2).not.toBe(h1);
    writeFileSync(join(dir, 'common/a.conf'), 'CONFIG_A=m\n');
    expect(fragmentsHash(dir)).not.toBe(h2);
    expect(FRAGMENTS_DIR).toMatch(/kernel\/fragments\/$/);
  });
});
