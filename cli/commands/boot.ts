import type { Argv, CommandModule } from 'yargs';
import {
  boot,
  parseGuestArch,
  parseDeviceSpec,
  parseObjectSpec,
  ACCELS,
  CHANNELS,
  type BootResult,
  type ContainerRequest,
  type GuestMount,
  type HotAdd,
} from '../../runtime/index.js';
import { OsbuilderError } from '../../core/errors.js';
import type { ConfigOverrides } from '../../runtime/index.js';
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
  firmware?: string;
  'kernel-verity-params'?: string;
  'pcie-root-port'?: number;
  'kernel-module'?: string[];
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
    .option('disable-image-nvdimm', { type: 'boolean', describe: 'Attach the image as a virtio disk instead of nvdimm (root=/dev/vda1)' })
    .option('firmware', {
      type: 'string',
      describe: 'Firmware booted with -bios (overrides hypervisor.qemu.firmware; an aarch64 nvdimm image needs UEFI: /usr/share/AAVMF/AAVMF_CODE.fd)',
    })
    .option('kernel-module', {
      type: 'string',
      array: true,
      describe: 'A module the agent loads at CreateSandbox, "name param=value …" (appended to agent.kata.kernel_modules; repeatable)',
    })
    .option('pcie-root-port', { type: 'number', describe: 'PCIe root ports to hotplug into (pcie_root_port = N with hot_plug_vfio = "root-port"; q35)' })
    .option('kernel-verity-params', {
      type: 'string',
      describe:
        'dm-verity root: root_hash=…,salt=…,data_blocks=…,data_block_size=…,hash_block_size=… as the image build wrote it (overrides kernel_verity_params; "" turns it off)',
    }) as Argv<T>;
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
  if (argv.firmware !== undefined) o.firmware = argv.firmware;
  if (argv['kernel-verity-params'] !== undefined) o.kernelVerityParams = argv['kernel-verity-params'];
  if (argv['pcie-root-port'] !== undefined) o.pcieRootPort = argv['pcie-root-port'];
  if (argv['kernel-module'] !== undefined) o.kernelModules = argv['kernel-module'];
  return o;
}

interface BootArgs extends RuntimeArgs {
  arch?: string;
  accel: string;
  timeout?: number;
  'console-log'?: string;
  'command-timeout'?: number;
  name?: string;
  channel: string;
  console: 'hvc' | 'serial';
  'guest-debug'?: boolean;
  bundle?: string;
  rootfs?: string;
  hostname?: string;
  interactive?: boolean;
  'guest-mount'?: string[];
  'hot-add'?: string[];
  'hot-add-object'?: string[];
  command?: string[];
}

/** --hot-add-object specs (added first), then --hot-add devices (hp0, hp1, … without an id=). */
function hotAdd(argv: BootArgs): HotAdd | undefined {
  const devices = (argv['hot-add'] ?? []).map((s, i) => parseDeviceSpec(s, `hp${i}`));
  const objects = (argv['hot-add-object'] ?? []).map(parseObjectSpec);
  return devices.length || objects.length ? { devices, objects } : undefined;
}

/** The guest command: everything after `--`, verbatim (yargs would turn "010" into 10). */
function guestCommand(argv: BootArgs): string[] {
  const i = process.argv.indexOf('--');
  if (i >= 0) return process.argv.slice(i + 1);
  return (argv.command ?? []).map(String);
}

function guestMounts(specs: string[]): GuestMount[] {
  return specs.map((spec) => {
    const [source, destination, ...rest] = spec.split(':');
    if (!source?.startsWith('/') || !destination?.startsWith('/') || rest.length) {
      throw new OsbuilderError(
        'USAGE',
        `--guest-mount ${JSON.stringify(spec)}: expected GUEST_PATH:CONTAINER_PATH, both absolute`,
        'e.g. --guest-mount /proc:/guest/proc',
      );
    }
    return { source, destination };
  });
}

function summary(r: BootResult): string[] {
  const t = r.timings;
  const c = r.container;
  return [
    `agent ${r.agent.version} (api ${r.agent.grpcVersion}) over ${r.channel}, ${r.accel} (${r.accelReason})`,
    ...(c ? [`container ${c.id} (${c.source} rootfs) exited with ${c.exitCode}`] : []),
    `timings: qemu start -> agent ready ${t.qemuStartToAgentReadyMs} ms${t.containerMs !== null ? `, container ${t.containerMs} ms` : ''}, shutdown ${t.shutdownMs} ms (${r.shutdown}), total ${t.totalMs} ms`,
  ];
}

function containerRequest(argv: BootArgs, command: string[]): ContainerRequest | undefined {
  if (!command.length && !argv.bundle) {
    if (argv.rootfs || argv.interactive || argv['guest-mount']?.length)
      throw new OsbuilderError('USAGE', '--rootfs, -i and --guest-mount need a command to run', 'put it after --, e.g. -- cat /etc/os-release');
    return undefined;
  }
  // Human output streams the container's stdout and stderr as they come; --json collects them.
  const io = {
    ...(argv.interactive ? { stdin: process.stdin as AsyncIterable<Uint8Array> } : {}),
    ...(argv.json ? {} : { onStdout: (b: Uint8Array) => process.stdout.write(b), onStderr: (b: Uint8Array) => process.stderr.write(b) }),
  };
  return {
    ...(command.length ? { command } : {}),
    ...(argv.bundle ? { bundle: argv.bundle } : {}),
    ...(argv.rootfs ? { rootfs: argv.rootfs } : {}),
    guestMounts: guestMounts(argv['guest-mount'] ?? []),
    io,
  };
}

export const bootCommand: CommandModule<GlobalArgs, BootArgs> = {
  command: 'boot [command..]',
  describe: "Boot a kernel with an image or initrd under QEMU as kata-runtime does, and run a container (the command after --) through Kata's agent API",
  builder: (y) =>
    runtimeOptions(y)
      .positional('command', { type: 'string', array: true, describe: 'Command to run in the container (put it after --)' })
      .option('bundle', { type: 'string', describe: 'OCI bundle to run (config.json + rootfs, as runc takes it); the command overrides process.args' })
      .option('rootfs', { type: 'string', describe: 'Container rootfs to run the command in, with the default spec' })
      .option('interactive', { alias: 'i', type: 'boolean', describe: "Pass our stdin to the container's (WriteStdin, CloseStdin at its end)" })
      .option('hostname', { type: 'string', describe: "Sandbox and container hostname (default: osbuilder, or the bundle's)" })
      .option('guest-mount', {
        type: 'string',
        array: true,
        describe: 'GUEST_PATH:CONTAINER_PATH: bind a path of the guest into the container, read-only (to inspect the guest)',
      })
      .option('hot-add', {
        type: 'string',
        array: true,
        describe:
          'Hot-add a PCIe device (QEMU -device syntax, e.g. ivshmem-plain,id=gpu0,memdev=gpumem) into a free root port once the sandbox is up, before the command runs',
      })
      .option('hot-add-object', {
        type: 'string',
        array: true,
        describe: 'Backing object for --hot-add (QEMU -object syntax, e.g. memory-backend-ram,id=gpumem,size=4G), added first',
      })
      .option('arch', {
        type: 'string',
        describe: "Guest arch: x86_64 or aarch64 (default: the configuration's QEMU says, else the host; another arch runs under TCG)",
      })
      .option('accel', { type: 'string', default: 'auto', describe: `Accelerator: ${ACCELS.join('|')} (auto probes KVM and falls back to TCG)` })
      .option('timeout', { type: 'number', describe: 'Seconds to wait for the agent (default: agent.kata.dial_timeout)' })
      .option('console-log', { type: 'string', describe: 'Write the guest console to this file' })
      .option('command-timeout', { type: 'number', describe: 'Seconds the container may run (default: no limit)' })
      .option('name', { type: 'string', describe: 'VM name (QEMU -name; the sandbox id derives from it)' })
      .option('channel', { type: 'string', default: 'auto', describe: `Agent channel: ${CHANNELS.join('|')} (auto: vsock when /dev/vhost-vsock works)` })
      .option('console', {
        type: 'string',
        choices: ['hvc', 'serial'],
        default: 'hvc',
        describe: "Guest console: Kata's hvc0, or the serial port (shows early boot)",
      })
      .option('guest-debug', { type: 'boolean', describe: 'Kernel and agent debug output (enable_debug)' }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      () =>
        boot({
          ...(argv.arch ? { arch: parseGuestArch(argv.arch) } : {}),
          ...(argv.config ? { configFile: argv.config } : {}),
          overrides: { ...overridesFrom(argv), ...(argv['guest-debug'] ? { debug: true } : {}) },
          accel: argv.accel,
          ...(argv.timeout !== undefined ? { timeoutSec: argv.timeout } : {}),
          ...(argv['console-log'] ? { consoleLog: argv['console-log'] } : {}),
          ...(() => {
            const c = containerRequest(argv, guestCommand(argv));
            return c ? { container: c } : {};
          })(),
          ...(argv['command-timeout'] ? { commandTimeoutSec: argv['command-timeout'] } : {}),
          ...(argv.name ? { name: argv.name } : {}),
          ...(argv.hostname ? { hostname: argv.hostname } : {}),
          channel: argv.channel,
          console: argv.console,
          ...(() => {
            const h = hotAdd(argv);
            return h ? { hotAdd: h } : {};
          })(),
        }),
      (r) => {
        // The container's output has been streamed; the summary goes to stderr when there was one.
        if (!r.container) return summary(r).join('\n');
        process.stderr.write(`${summary(r).join('\n')}\n`);
        return '';
      },
      (r) => (r.container ? r.container.exitCode : 0),
    ),
};
