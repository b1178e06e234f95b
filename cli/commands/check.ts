import type { CommandModule } from 'yargs';
import { checkHost, type HostReport, type ProbeResult } from '../../runtime/index.js';
import { runCommand, table, type GlobalArgs } from '../output.js';

interface CheckArgs extends GlobalArgs {
  qemu?: string;
  fresh?: boolean;
}

function probeLine(p: ProbeResult | null, none: string): string {
  if (!p) return none;
  return `${p.ok ? 'passed' : 'FAILED'}: ${p.detail} (${p.ms} ms${p.cached ? ', cached' : ''})`;
}

function human(r: HostReport): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const rows: string[][] = [
    ['architecture', `${r.arch}, host kernel ${r.kernel}`],
    ['CPU', `${r.cpu.vendor}, ${r.cpu.model}`],
    ['virtualization flag', r.cpu.virtualization ?? 'none (no vmx/svm in /proc/cpuinfo)'],
    ['/dev/kvm', r.kvm.device ? (r.kvm.accessible ? 'present, accessible' : 'present, NOT accessible') : 'absent'],
    [
      'modules',
      Object.entries(r.kvm.modules)
        .map(([m, on]) => `${m} ${yes(on)}`)
        .join(', '),
    ],
    ['/dev/vhost-vsock', r.vhostVsock.device ? (r.vhostVsock.accessible ? 'present, accessible' : 'present, NOT accessible') : 'absent'],
    ['QEMU', r.qemu.path ? `${r.qemu.path} ${r.qemu.version ?? '(unknown version)'}` : 'NOT FOUND'],
    ['KVM probe', probeLine(r.kvm.probe, r.kvm.accessible ? 'not run (no probe guest for this arch)' : 'not run (/dev/kvm unusable)')],
    ['KVM usable', yes(r.kvm.usable)],
    ['TCG probe', probeLine(r.tcg.probe, 'not run')],
    ['TCG available', yes(r.tcg.available)],
    ['--accel auto', `${r.accel.auto} (${r.accel.reason})`],
    ['--channel auto', `${r.agentChannel.auto} (${r.agentChannel.reason})`],
  ];
  return table(['check', 'result'], rows);
}

export const checkCommand: CommandModule<GlobalArgs, CheckArgs> = {
  command: 'check',
  describe: 'Check the host for running guests (like kata-runtime check) and probe KVM and TCG with a tiny VM',
  builder: (y) =>
    y
      .option('qemu', { type: 'string', describe: 'QEMU binary to check (default: qemu-system-<arch> on PATH)' })
      .option('fresh', { type: 'boolean', describe: 'Ignore a cached KVM probe verdict' }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      () => checkHost({ probeTcg: true, ...(argv.qemu ? { qemu: argv.qemu } : {}), ...(argv.fresh ? { fresh: true } : {}) }),
      human,
      (r) => (r.kvm.usable || r.tcg.available ? 0 : 1),
    ),
};
