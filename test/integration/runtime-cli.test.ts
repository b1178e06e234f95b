/**
 * check, env and boot's input errors through the compiled CLI (npm run build
 * first). The probes start real QEMU; the boot errors happen before QEMU runs,
 * and no QEMU with the test's name is left either way.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { runCli, type CliErrorJson } from '../support/cli.js';
import type { EnvReport, HostReport } from '../../runtime/index.js';
import { qemuNamed } from '../support/procs.js';
import { makeTempDir } from '../support/fixtures.js';

let dir: string;
let kernel: string;
let initrd: string;

/** The QEMU named `name` (ours alone: each test picks a name no one else uses). */
async function qemuLeft(name: string): Promise<string> {
  return (await qemuNamed(name)).map((p) => `${p.pid} ${p.argv.join(' ')}`).join('\n');
}

beforeAll(async () => {
  dir = await makeTempDir('osb-runtime-cli-');
  // Stand-in files: every error below is found before QEMU would read them.
  kernel = join(dir, 'vmlinux');
  initrd = join(dir, 'kata.initrd');
  await writeFile(kernel, 'not a kernel');
  await writeFile(initrd, 'not an initrd');
});

describe('osbuilder check', () => {
  it('reports the host and probes KVM and TCG with a real tiny VM', async () => {
    const r = await runCli<HostReport>(['check', '--json'], { timeout: 120_000 });
    expect(r.exitCode).toBe(0);
    const c = r.json!;
    expect(c.arch).toBe('x86_64');
    expect(typeof c.cpu.vendor).toBe('string');
    expect(Object.keys(c.kvm.modules)).toEqual(['kvm', 'kvm_intel', 'kvm_amd', 'vhost', 'vhost_net', 'vhost_vsock']);
    expect(c.qemu.path).toMatch(/qemu-system-x86_64$/);
    expect(c.qemu.version).toMatch(/^\d+\.\d+/);
    // TCG always works where QEMU is installed, and the probe guest proves it.
    expect(c.tcg.probe).toMatchObject({ accel: 'tcg', ok: true, markers: 'SLMC' });
    expect(c.tcg.available).toBe(true);
    // The KVM verdict is the probe's, and auto follows it.
    if (c.kvm.accessible) {
      expect(c.kvm.probe!.accel).toBe('kvm');
      expect(c.kvm.usable).toBe(c.kvm.probe!.ok);
    } else {
      expect(c.kvm.usable).toBe(false);
    }
    expect(c.accel.auto).toBe(c.kvm.usable ? 'kvm' : 'tcg');
    if (c.kvm.device && !c.kvm.usable) expect(c.accel.reason).toMatch(/KVM is present but not usable|not accessible/);

    // A second check reuses the KVM verdict (keyed by kernel and QEMU version).
    if (c.kvm.accessible) {
      const again = await runCli<HostReport>(['check', '--json'], { timeout: 120_000 });
      expect(again.json!.kvm.probe!.cached).toBe(true);
      expect(again.json!.kvm.usable).toBe(c.kvm.usable);
    }
    const human = await runCli(['check'], { timeout: 120_000 });
    expect(human.stdout).toMatch(/^TCG probe\s+passed/m);
    expect(human.stdout).toMatch(/^--accel auto\s+(kvm|tcg)/m);
    for (const run of [r, human]) for (const accel of ['kvm', 'tcg']) expect(await qemuLeft(`osbuilder-probe-${accel}-${run.pid}`)).toBe('');
  });
});

describe('osbuilder env', () => {
  it('prints the resolved configuration as TOML and JSON with the kata-env sections', async () => {
    const cfg = join(dir, 'configuration.toml');
    await writeFile(
      cfg,
      `[hypervisor.qemu]\nkernel = "${kernel}"\ninitrd = "${initrd}"\ndefault_vcpus = 2\nkernel_params = "foo=bar"\nbogus_key = 1\n[agent.kata]\ndial_timeout = 20\n`,
    );
    const j = await runCli<EnvReport>(['env', '--config', cfg, '--json'], { timeout: 120_000 });
    expect(j.exitCode).toBe(0);
    expect(Object.keys(j.json!)).toEqual(['Meta', 'Kernel', 'Image', 'Initrd', 'Hypervisor', 'Agent', 'Host']);
    expect(j.json!.Meta.ConfigFile).toBe(cfg);
    expect(j.json!.Meta.Warnings).toEqual([`unknown key hypervisor.qemu.bogus_key in ${cfg} (ignored)`]);
    expect(j.json!.Kernel).toMatchObject({ Path: kernel, Exists: true });
    expect(j.json!.Kernel.Parameters).toMatch(/console=hvc0 .*panic=1 .*foo=bar$/);
    expect(j.json!.Image).toMatchObject({ Path: '', Exists: false });
    expect(j.json!.Initrd).toEqual({ Path: initrd, Exists: true });
    expect(j.json!.Hypervisor).toMatchObject({ MachineType: 'q35', DefaultVCPUs: 2, DefaultMemory: 2048, EntropySource: '/dev/urandom' });
    expect(['kvm', 'tcg']).toContain(j.json!.Hypervisor.Accelerator);
    expect(j.json!.Agent).toMatchObject({ DialTimeout: 20, VsockPort: 1024, SerialPort: 'agent.channel.0' });
    expect(j.json!.Host.Architecture).toBe('x86_64');
    expect(j.stderr).toMatch(/warning: unknown key hypervisor\.qemu\.bogus_key/);

    const t = await runCli(['env', '--config', cfg, '--vcpus', '3'], { timeout: 120_000 });
    expect(t.exitCode).toBe(0);
    const doc = parse(t.stdout) as Record<string, Record<string, unknown>>;
    expect(doc.Hypervisor!.DefaultVCPUs).toBe(3);
    expect(doc.Initrd!.Path).toBe(initrd);
    expect(doc.Host!.Architecture).toBe('x86_64');
  });

  it('fails on a configuration that is not TOML', async () => {
    const bad = join(dir, 'bad.toml');
    await writeFile(bad, '[hypervisor.qemu\nkernel = 1\n');
    const r = await runCli(['env', '--config', bad]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[CONFIG_INVALID\]: .*bad\.toml is not valid TOML/m);
  });
});

describe('osbuilder boot: bad input is refused before QEMU runs', () => {
  const name = `osb-badinput-${process.pid}`;

  it.each([
    ['a missing kernel', () => ['--kernel', join(dir, 'nope'), '--initrd', initrd], 'INPUT_NOT_FOUND', /kernel .*nope does not exist/],
    ['a missing image', () => ['--kernel', kernel, '--image', join(dir, 'nope.img')], 'INPUT_NOT_FOUND', /image .*nope\.img does not exist/],
    ['a missing initrd', () => ['--kernel', kernel, '--initrd', join(dir, 'nope.initrd')], 'INPUT_NOT_FOUND', /initrd .*nope\.initrd does not exist/],
    ['image and initrd both', () => ['--kernel', kernel, '--image', initrd, '--initrd', initrd], 'USAGE', /--image and --initrd are both given/],
    ['an unknown accelerator', () => ['--kernel', kernel, '--initrd', initrd, '--accel', 'hvf'], 'USAGE', /unknown accelerator "hvf"/],
    ['a bad vcpu count', () => ['--kernel', kernel, '--initrd', initrd, '--vcpus', '0'], 'CONFIG_INVALID', /--vcpus: must be between 1 and 288/],
    ['an image that cannot back an nvdimm', () => ['--kernel', kernel, '--image', initrd], 'INPUT_INVALID', /not a multiple of 2 MiB/],
    ['a missing configuration file', () => ['--config', join(dir, 'none.toml')], 'INPUT_NOT_FOUND', /configuration file .*none\.toml does not exist/],
  ])('%s', async (_what, args, code, message) => {
    const r = await runCli(['boot', '--name', name, ...args(), '--', 'true']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^error\\[${code}\\]: `, 'm'));
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^ {2}hint: /m);
    expect(await qemuLeft(name)).toBe('');
  });

  it('image and initrd both in the configuration, and bad TOML, name the problem', async () => {
    const both = join(dir, 'both.toml');
    await writeFile(both, `[hypervisor.qemu]\nkernel = "${kernel}"\nimage = "${initrd}"\ninitrd = "${initrd}"\n`);
    let r = await runCli<CliErrorJson>(['boot', '--name', name, '--config', both, '--json']);
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('CONFIG_INVALID');
    expect(r.json!.error.message).toMatch(/hypervisor\.qemu\.image and hypervisor\.qemu\.initrd are both set/);

    const bad = join(dir, 'bad2.toml');
    await writeFile(bad, '[hypervisor.qemu]\ndefault_memory = "lots"\n');
    r = await runCli<CliErrorJson>(['boot', '--name', name, '--config', bad]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/error\[CONFIG_INVALID\]: hypervisor\.qemu\.default_memory: expected a whole number, got "lots"/);
    expect(r.stderr).toMatch(/hint: fix hypervisor\.qemu\.default_memory in .*bad2\.toml/);
    expect(await qemuLeft(name)).toBe('');
  });

  it('a file that is not a kernel: QEMU refuses it, the error carries its message', async () => {
    const r = await runCli(['boot', '--name', name, '--kernel', kernel, '--initrd', initrd, '--accel', 'tcg', '--timeout', '60', '--', 'true']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[BOOT_FAILED\]: QEMU exited with code 1 before the agent answered:\nqemu(-system-x86_64)?: /m);
    expect(await qemuLeft(name)).toBe('');
  });

  it('a console log in a missing directory is refused up front', async () => {
    const r = await runCli([
      'boot',
      '--name',
      name,
      '--kernel',
      kernel,
      '--initrd',
      initrd,
      '--accel',
      'tcg',
      '--console-log',
      join(dir, 'no/such/dir/console.log'),
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/error\[OUTPUT_INVALID\]: output directory .* does not exist/);
    expect(await qemuLeft(name)).toBe('');
  });
});
