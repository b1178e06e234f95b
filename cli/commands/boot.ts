import type { Argv, CommandModule } from 'yargs';
import { boot, ACCELS, CHANNELS, type BootResult } from '../../runtime/index.js';
import type { ConfigOverrides } from '../../runtime/config.js';
import { runCommand, type GlobalArgs } from '../output.js';

export interface RuntimeArgs extends GlobalArgs {
  config?: string;
  kernel?: string;
  image?: string;
  initrd?: string;
  'kernel-params'?: string;
  vcpus?: number;
  memory?: number;
  'machine-type'?: string;
  'disable-image-nvdimm'?: boolean;
}

/** Options shared by boot and env: a configuration file and what overrides it. */
export function runtimeOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('config', { type: 'string', describe: "Kata configuration.toml (default: $KATA_CONF_FILE, then Kata's default locations)" })
    .option('kernel', { type: 'string', describe: 'Guest kernel (overrides hypervisor.qemu.kernel)' })
    .option('image', { type: 'string', describe: 'Root image (overrides hypervisor.qemu.image; exclusive with --initrd)' })
    .option('initrd', { type: 'string', describe: 'Initrd (overrides hypervisor.qemu.initrd; exclusive with --image)' })
    .option('kernel-params', { type: 'string', describe: 'Extra kernel parameters, appended' })
    .option('vcpus', { type: 'number', describe: 'vCPUs (overrides default_vcpus)' })
    .option('memory', { type: 'number', describe: 'Memory in MiB (overrides default_memory)' })
    .option('machine-type', { type: 'string', describe: 'q35 or pc (x86_64), virt (aarch64)' })
    .option('disable-image-nvdimm', { type: 'boolean', describe: 'Attach the image as a virtio disk instead of nvdimm (root=/dev/vda1)' }) as Argv<T>;
}

export function overridesFrom(argv: RuntimeArgs): ConfigOverrides {
  const o: ConfigOverrides = {};
  if (argv.kernel !== undefined) o.kernel = argv.kernel;
  if (argv.image !== undefined) o.image = argv.image;
  if (argv.initrd !== undefined) o.initrd = argv.initrd;
  if (argv['kernel-params'] !== undefined) o.kernelParams = argv['kernel-params'];
  if (argv.vcpus !== undefined) o.vcpus = argv.vcpus;
  if (argv.memory !== undefined) o.memory = argv.memory;
  if (argv['machine-type'] !== undefined) o.machineType = argv['machine-type'];
  if (argv['disable-image-nvdimm'] !== undefined) o.disableImageNvdimm = argv['disable-image-nvdimm'];
  return o;
}

interface BootArgs extends RuntimeArgs {
  accel: string;
  timeout?: number;
  'console-log'?: string;
  'command-timeout'?: number;
  name?: string;
  channel: string;
  console: 'hvc' | 'serial';
  'guest-debug'?: boolean;
  command?: string[];
}

/** The guest command: everything after `--`, verbatim (yargs would turn "010" into 10). */
function guestCommand(argv: BootArgs): string[] {
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return (argv.command ?? []).map(String);
}

function summary(r: BootResult): string[] {
  const t = r.timings;
  return [
    `agent ${r.agent.version} (api ${r.agent.grpcVersion}) over ${r.channel}, ${r.accel} (${r.accelReason})`,
    ...(r.command ? [`command exited with ${r.command.exitCode}${r.command.timedOut ? ' (timed out)' : ''}${r.command.truncated ? ' (output truncated)' : ''}`] : []),
    `timings: qemu start -> agent ready ${t.qemuStartToAgentReadyMs} ms${t.commandMs !== null ? `, command ${t.commandMs} ms` : ''}, shutdown ${t.shutdownMs} ms (${r.shutdown}), total ${t.totalMs} ms`,
  ];
}

export const bootCommand: CommandModule<GlobalArgs, BootArgs> = {
  command: 'boot [command..]',
  describe: 'Boot a kernel with an image or initrd under QEMU, wait for the agent, run a command (after --) through it',
  builder: (y) =>
    runtimeOptions(y)
      .positional('command', { type: 'string', array: true, describe: 'Command to run in the guest (put it after --)' })
      .option('accel', { type: 'string', default: 'auto', describe: `Accelerator: ${ACCELS.join('|')} (auto probes KVM and falls back to TCG)` })
      .option('timeout', { type: 'number', describe: 'Seconds to wait for the agent (default: agent.kata.dial_timeout)' })
      .option('console-log', { type: 'string', describe: 'Write the guest console to this file' })
      .option('command-timeout', { type: 'number', describe: 'Seconds the command may run (default: no limit)' })
      .option('name', { type: 'string', describe: 'VM name (QEMU -name)' })
      .option('channel', { type: 'string', default: 'auto', describe: `Agent channel: ${CHANNELS.join('|')} (auto: vsock when /dev/vhost-vsock works)` })
      .option('console', { type: 'string', choices: ['hvc', 'serial'], default: 'hvc', describe: "Guest console: Kata's hvc0, or the serial port (shows early boot)" })
      .option('guest-debug', { type: 'boolean', describe: 'Kernel and agent debug output (enable_debug)' }) as never,
  handler: (argv) => {
    const command = guestCommand(argv);
    return runCommand(
      argv,
      () =>
        boot({
          ...(argv.config ? { configFile: argv.config } : {}),
          overrides: { ...overridesFrom(argv), ...(argv['guest-debug'] ? { debug: true } : {}) },
          accel: argv.accel,
          ...(argv.timeout !== undefined ? { timeoutSec: argv.timeout } : {}),
          ...(argv['console-log'] ? { consoleLog: argv['console-log'] } : {}),
          ...(command.length ? { command } : {}),
          ...(argv['command-timeout'] ? { commandTimeoutSec: argv['command-timeout'] } : {}),
          ...(argv.name ? { name: argv.name } : {}),
          channel: argv.channel,
          console: argv.console,
        }),
      (r) => {
        if (!r.command) return summary(r).join('\n');
        // The command's stdout is the result; everything else goes to stderr.
        if (r.command.stderr) process.stderr.write(r.command.stderr);
        process.stderr.write(summary(r).join('\n') + '\n');
        return r.command.stdout;
      },
      (r) => (r.command ? r.command.exitCode : 0),
    );
  },
};
