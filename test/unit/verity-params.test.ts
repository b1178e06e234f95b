/**
 * kernel_verity_params: the string the image build writes, the checks Kata's
 * runtime makes on it (ParseKernelVerityParams), and the kernel parameters it
 * becomes (GetKernelRootParams), in configuration.toml, on the command line
 * and in the QEMU plan.
 */
import { describe, expect, it } from 'vitest';
import { formatVerityParams, parseVerityParams, verityRootParams } from '../../core/verity-params.js';
import { applyOverrides, defaultConfig, parseConfig } from '../../runtime/config.js';
import { imageRootDevice, kernelParams, rootParams } from '../../runtime/qemu.js';
import { thrown } from '../support/errors.js';

const ROOT = 'f211b9f1921ef726d57a72bf82be23a510076639fa8549ade10f85e214e0ddb4';
const SALT = '065c13dfb5b4e0af034685aa5442bddda47b17c182ee44ba55a373835d18a038';
const PARAMS = `root_hash=${ROOT},salt=${SALT},data_blocks=92041,data_block_size=4096,hash_block_size=4096`;

describe('kernel_verity_params', () => {
  it('round-trips the form Kata writes; empty means off', () => {
    const p = parseVerityParams(PARAMS)!;
    expect(p).toEqual({ rootHash: ROOT, salt: SALT, dataBlocks: 92041, dataBlockSize: 4096, hashBlockSize: 4096 });
    expect(formatVerityParams(p)).toBe(PARAMS);
    expect(parseVerityParams('')).toBeUndefined();
    expect(parseVerityParams('  ')).toBeUndefined();
    // spaces around fields and empty fields are skipped, other keys ignored, as Kata does
    expect(parseVerityParams(` ${PARAMS.replace(',salt', ', ,salt')},future=1`)).toEqual(p);
  });

  it.each([
    ['a missing root_hash', PARAMS.replace(`root_hash=${ROOT},`, ''), /missing root_hash/],
    ['an empty root_hash', PARAMS.replace(ROOT, ''), /missing root_hash/],
    ['a root_hash that is not hex', PARAMS.replace(ROOT, 'xyz'), /root_hash "xyz" is not a hex string/],
    ['a missing salt', PARAMS.replace(`salt=${SALT},`, ''), /missing salt/],
    ['a missing data_blocks', PARAMS.replace('data_blocks=92041,', ''), /missing data_blocks/],
    ['a non-number', PARAMS.replace('92041', '9x'), /data_blocks "9x" is not a whole number/],
    ['a negative number', PARAMS.replace('92041', '-1'), /data_blocks "-1" is not a whole number/],
    ['zero blocks', PARAMS.replace('92041', '0'), /data_blocks must be non-zero/],
    ['a block size not a multiple of 512', PARAMS.replace('data_block_size=4096', 'data_block_size=1000'), /data_block_size 1000 must be a multiple of 512/],
    ['an entry that is not key=value', `${PARAMS},oops`, /entry "oops" is not key=value/],
  ])('refuses %s with CONFIG_INVALID naming the problem', (_what, text, message) => {
    const e = thrown(() => parseVerityParams(text));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/^kernel_verity_params: /);
    expect(e.message).toMatch(message);
    expect(e.hint).toMatch(/root_hash_<variant>\.txt/);
  });

  it("becomes Kata's dm-mod.create table over p1 + p2, root=/dev/dm-0", () => {
    const p = parseVerityParams(PARAMS)!;
    const table = `verity 1 /dev/vda1 /dev/vda2 4096 4096 92041 0 sha256 ${ROOT} ${SALT}`;
    expect(verityRootParams(p, false, 'ext4')).toEqual([
      `dm-mod.create="dm-verity,,,ro,0 736328 ${table}"`,
      'root=/dev/dm-0',
      'rootflags=data=ordered,errors=remount-ro',
      'ro',
      'rootfstype=ext4',
    ]);
    expect(verityRootParams(p, true, 'erofs')).toEqual([
      `dm-mod.create="dm-verity,,,ro,0 736328 ${table.replace('/dev/vda1 /dev/vda2', '/dev/pmem0p1 /dev/pmem0p2')}"`,
      'root=/dev/dm-0',
      'rootflags=ro',
      'rootfstype=erofs',
    ]);
  });
});

describe('kernel_verity_params in the runtime', () => {
  it('is read from configuration.toml and checked there, naming the key and the file', () => {
    const c = parseConfig(`[hypervisor.qemu]\nkernel_verity_params = "${PARAMS}"\n`, '/etc/k.toml');
    expect(c.hypervisor.kernelVerityParams).toBe(PARAMS);
    expect(c.warnings).toEqual([]);
    const e = thrown(() => parseConfig('[hypervisor.qemu]\nkernel_verity_params = "root_hash=ab"\n', '/etc/k.toml'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/^hypervisor\.qemu\.kernel_verity_params: missing data_blocks \(in \/etc\/k\.toml\)$/);
    expect(defaultConfig().hypervisor.kernelVerityParams).toBe('');
  });

  it('--kernel-verity-params overrides the file; "" turns verity off', () => {
    const base = parseConfig(`[hypervisor.qemu]\nkernel_verity_params = "${PARAMS}"\n`, null);
    expect(applyOverrides(base, { kernelVerityParams: '' }).hypervisor.kernelVerityParams).toBe('');
    const wrong = PARAMS.replace(ROOT, '0'.repeat(64));
    expect(applyOverrides(base, { kernelVerityParams: wrong }).hypervisor.kernelVerityParams).toBe(wrong);
    expect(thrown(() => applyOverrides(base, { kernelVerityParams: 'salt=00' })).message).toMatch(/^--kernel-verity-params: missing root_hash/);
  });

  it('puts the table on the kernel command line in place of root=/dev/pmem0p1 or /dev/vda1', () => {
    const hv = { ...defaultConfig().hypervisor, kernelVerityParams: PARAMS };
    const nvdimm = imageRootDevice(hv, '/i.img', 128 << 20);
    expect(rootParams(nvdimm)[1]).toBe('root=/dev/dm-0');
    const blk = imageRootDevice({ ...hv, disableImageNvdimm: true }, '/i.img', 128 << 20);
    const params = kernelParams({ arch: 'x86_64', root: blk, console: 'hvc', debug: false, agentDebug: false });
    expect(params.filter((p) => /^root=|^dm-mod/.test(p))).toEqual([expect.stringContaining('/dev/vda1 /dev/vda2 '), 'root=/dev/dm-0']);
    expect(params).not.toContain('root=/dev/vda1');
    // without it, the plain root device as before
    expect(rootParams(imageRootDevice(defaultConfig().hypervisor, '/i.img', 1))[0]).toBe('root=/dev/pmem0p1');
  });
});
