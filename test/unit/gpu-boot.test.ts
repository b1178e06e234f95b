/** The GPU boot test's pure parts: the guest PCI listing, the probe initrd's second archive, the configuration's kernel_modules. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGuestPci } from '../../pipeline/gpu-checks.js';
import { initrdWithModule, PROBE_MODULE } from '../../pipeline/gpu-probe.js';
import { renderQemuConfig } from '../../pipeline/install.js';
import { readNewcBuffer } from '../../initrd-builder/index.js';
import { parseConfig } from '../../runtime/config.js';

describe('guest PCI listing', () => {
  it('devices with their assigned resources; a 64-bit BAR above 4 GiB stays exact', () => {
    const text = [
      '0000:00:00.0 0x8086 0x29c0',
      '0000:01:00.0 0x1af4 0x1110',
      '  0x00000000fe800000 0x00000000fe8000ff 0x0000000000040200',
      '  0x0000000800000000 0x00000008ffffffff 0x000000000014220c',
      '',
    ].join('\n');
    expect(parseGuestPci(text)).toEqual([
      { address: '0000:00:00.0', vendor: '0x8086', device: '0x29c0', resources: [] },
      {
        address: '0000:01:00.0',
        vendor: '0x1af4',
        device: '0x1110',
        resources: [
          { start: 0xfe800000, end: 0xfe8000ff },
          { start: 0x800000000, end: 0x8ffffffff },
        ],
      },
    ]);
  });
});

describe('the probe initrd', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-gpu-probe-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is the initrd, zero padding to 4 bytes, then a newc archive of the module and its modules.dep', async () => {
    const initrd = join(dir, 'in.img');
    await writeFile(initrd, Buffer.from('compressed-initrd-bytes')); // 23 bytes: one byte of padding
    const ko = join(dir, 'm.ko');
    await writeFile(ko, Buffer.from('\x7fELF module bytes'));
    await mkdir(join(dir, 'work'));
    const out = join(dir, 'out.img');
    await initrdWithModule(initrd, ko, '6.1.192-kata', join(dir, 'work'), out);
    const bytes = await readFile(out);
    expect(bytes.subarray(0, 23).toString()).toBe('compressed-initrd-bytes');
    expect(bytes[23]).toBe(0);
    const entries = await readNewcBuffer(bytes.subarray(24));
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    const base = 'lib/modules/6.1.192-kata';
    expect(byName[`${base}/extra/${PROBE_MODULE}.ko`]!.data!.toString()).toBe('\x7fELF module bytes');
    expect(byName[`${base}/modules.dep`]!.data!.toString()).toBe(`extra/${PROBE_MODULE}.ko:\n`);
    expect(entries.every((e) => e.header.uid === 0 && e.header.gid === 0)).toBe(true);
  });
});

describe('configuration for a GPU boot', () => {
  it('kernel_modules goes under [agent.kata] and reads back; no line without modules', () => {
    const base = { qemuPath: 'q', machineType: 'q35', kernel: '/k', initrd: '/i', toolVersion: 't', gpu: true };
    const text = renderQemuConfig({ ...base, kernelModules: [`${PROBE_MODULE} token=abc`] });
    const c = parseConfig(text, 'gpu.toml');
    expect(c.agent.kernelModules).toEqual([{ name: PROBE_MODULE, parameters: ['token=abc'] }]);
    expect(c.hypervisor.pcieRootPort).toBe(1);
    expect(c.warnings).toEqual([]);
    expect(renderQemuConfig(base)).not.toContain('kernel_modules');
  });
});
