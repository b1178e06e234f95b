import type { Argv, CommandModule } from 'yargs';
import { KERNEL_OPTIONS } from '../../kernel/index.js';
import { addOptions, buildOptions, readOptions, type OptionSpec } from '../../core/options.js';
import { IMAGE_OPTIONS, type ImageOptionValues } from '../../image-builder/index.js';
import { INITRD_OPTIONS, type InitrdOptionValues } from '../../initrd-builder/index.js';
import { build, BUILD_INITRD_DEFAULTS, verifyReproducible, type BuildOptions, type BuildResult, type ReproducibleResult } from '../../pipeline/index.js';
import { ROOTFS_OPTIONS, type RootfsOptionValues } from '../../rootfs-builder/index.js';
import { runCommand, table, type GlobalArgs } from '../output.js';
import { mib } from '../../core/vocab.js';
import { formatElapsed } from '../../core/log.js';

export interface BuildArgs extends GlobalArgs {
  distro?: string;
  'initrd-distro'?: string;
  image?: boolean;
  initrd?: boolean;
  kernel?: boolean;
  gpu?: string;
  prefix: string;
  jobs: number;
  'make-jobs'?: number;
  cache: boolean;
  'boot-test': boolean;
  force: boolean;
  'verify-reproducible': boolean;
  'docker-host'?: string;
  accel?: string;
  'boot-timeout'?: number;
}

/**
 * The rootfs, image, initrd and kernel stages' output-changing options, under the
 * stage commands' names (the image's and the kernel's short aliases and the environment
 * variables are the stage commands' own).
 */
function addStageOptions<Y extends Argv<unknown>>(y: Y): Y {
  addOptions(y, rootfsFlags(), { env: false });
  addOptions(y, buildOptions(IMAGE_OPTIONS), { aliases: false, env: false });
  addOptions(y, buildOptions(KERNEL_OPTIONS), { aliases: false, env: false });
  return addOptions(y, buildOptions(INITRD_OPTIONS), { aliases: false, env: false, defaults: BUILD_INITRD_DEFAULTS });
}

/** The rootfs stage's output-changing options, and --no-package-cache (it changes no output but saves the downloads). */
function rootfsFlags(): OptionSpec[] {
  return ROOTFS_OPTIONS.filter((s) => buildOptions(ROOTFS_OPTIONS).includes(s) || s.key === 'packageCache');
}

type RootfsFlags = 'osVersion' | 'arch' | 'engine' | 'agent' | 'extraPackages' | 'mirror' | 'baseImage';
type KernelFlags = 'kernelVersion' | 'kernelSource' | 'kernelSha256' | 'confidential' | 'fragments';

/** The kernel's flags; an empty --kernel-version or --kernel-source counts as not given. */
function kernelOptionsOf(argv: object): Pick<BuildOptions, KernelFlags> {
  const { kernelVersion, kernelSource, ...rest } = readOptions(buildOptions(KERNEL_OPTIONS), argv) as Pick<BuildOptions, KernelFlags>;
  return { ...(kernelVersion ? { kernelVersion } : {}), ...(kernelSource ? { kernelSource } : {}), ...rest };
}

function stageOptionsOf(argv: object): Pick<BuildOptions, 'imageOptions' | 'initrdOptions' | 'noPackageCache' | RootfsFlags | KernelFlags> {
  const { packageCache, ...rootfs } = readOptions(rootfsFlags(), argv) as Pick<RootfsOptionValues, RootfsFlags | 'packageCache'>;
  const imageOptions = readOptions(buildOptions(IMAGE_OPTIONS), argv) as ImageOptionValues;
  const initrdOptions = readOptions(buildOptions(INITRD_OPTIONS), argv) as InitrdOptionValues;
  return {
    ...rootfs,
    ...kernelOptionsOf(argv),
    ...(packageCache === false ? { noPackageCache: true } : {}),
    ...(Object.keys(imageOptions).length ? { imageOptions } : {}),
    ...(Object.keys(initrdOptions).length ? { initrdOptions } : {}),
  };
}

/** The build's options from its parsed flags (--json and --debug are the output's, not the build's). */
export function buildOptionsFromArgs(argv: BuildArgs): BuildOptions {
  return {
    ...(argv.distro ? { distro: argv.distro } : {}),
    ...(argv['initrd-distro'] ? { initrdDistro: argv['initrd-distro'] } : {}),
    ...(argv.image !== undefined ? { image: argv.image } : {}),
    ...(argv.initrd !== undefined ? { initrd: argv.initrd } : {}),
    ...(argv.kernel !== undefined ? { kernel: argv.kernel } : {}),
    ...(argv.gpu ? { gpu: argv.gpu } : {}),
    ...stageOptionsOf(argv),
    prefix: argv.prefix,
    jobs: argv.jobs,
    ...(argv['make-jobs'] !== undefined ? { makeJobs: argv['make-jobs'] } : {}),
    noCache: !argv.cache,
    noBootTest: !argv['boot-test'],
    force: argv.force,
    ...(argv['docker-host'] ? { dockerHost: argv['docker-host'] } : {}),
    ...(argv.accel ? { accel: argv.accel } : {}),
    ...(argv['boot-timeout'] !== undefined ? { bootTimeout: argv['boot-timeout'] } : {}),
  };
}

function human(r: BuildResult | ReproducibleResult): string {
  if ('reproducible' in r) {
    return [
      `reproducible with SOURCE_DATE_EPOCH=${r.sourceDateEpoch}:`,
      table(
        ['artifact', 'sha256 (both builds)'],
        r.artifacts.map((a) => [a.file, a.sha256[0]]),
      ),
      ...r.notes.map((n) => `note: ${n}`),
    ].join('\n');
  }
  return [
    table(
      ['artifact', 'size', 'sha256', 'build', 'boot'],
      r.rows.map((x) => [x.artifact, mib(x.size), x.sha256.slice(0, 16), x.cached ? 'cached' : formatElapsed(x.buildMs), x.boot]),
    ),
    ...r.notes.map((n) => `note: ${n}`),
    `${r.install} ${r.shareDir} (${formatElapsed(r.totalMs)})`,
  ].join('\n');
}

export const buildCommand: CommandModule<GlobalArgs, BuildArgs> = {
  command: 'build [distro]',
  describe: 'Build rootfs → image/initrd, kernel, boot-test every pair, install under <prefix>/usr/share/kata-containers',
  builder: (y) =>
    addStageOptions(
      y
        .positional('distro', { type: 'string', describe: 'Distro of the image (and initrd); default: debian image + busybox initrd' })
        .option('initrd-distro', { type: 'string', describe: 'Distro of the initrd (default: <distro>, else busybox)' })
        .option('image', { type: 'boolean', describe: 'Build the disk image (systemd guest, Kata layout)' })
        .option('initrd', { type: 'boolean', describe: 'Build the initrd (agent as init)' })
        .option('kernel', { type: 'boolean', describe: 'Build the guest kernel (none of --image/--initrd/--kernel: all three)' })
        .option('gpu', { alias: 'g', type: 'string', describe: 'Also build the GPU kernel variant (nvidia), boot-tested with every artifact' })
        .option('prefix', {
          type: 'string',
          default: '/',
          describe: 'Install root: <prefix>/usr/share/kata-containers, <prefix>/usr/share/defaults/kata-containers',
        })
        .option('jobs', { alias: 'j', type: 'number', default: 1, describe: 'Independent stages run at once' })
        .option('make-jobs', { type: 'number', describe: 'make -j of each kernel build (default: the cores split among the kernels built at once)' })
        .option('cache', { type: 'boolean', default: true, describe: 'Reuse cached artifacts (--no-cache rebuilds and refreshes them)' })
        .option('boot-test', { type: 'boolean', default: true, describe: 'Boot every kernel × artifact pair and check the agent (--no-boot-test skips)' })
        .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Replace an existing different install' })
        .option('verify-reproducible', {
          type: 'boolean',
          default: false,
          describe: 'Build the image/initrd twice from empty caches and compare (installs nothing)',
        })
        .option('docker-host', { type: 'string', describe: 'Docker engine to build on (sets DOCKER_HOST)' })
        .option('accel', { type: 'string', describe: 'Boot test accelerator: auto, kvm or tcg (default auto: a real KVM probe)' })
        .option('boot-timeout', { type: 'number', describe: 'Seconds a boot test may wait for the agent (default 300: TCG is slow)' })
        .example('$0 build --prefix ./out', 'debian image + busybox initrd + kernel, boot-tested, installed under ./out')
        .example('$0 build debian --image -g nvidia --prefix /', 'debian image, default and GPU kernels, both boot-tested with it'),
    ) as never,
  handler: (argv) => {
    const opts = buildOptionsFromArgs(argv);
    return runCommand<BuildResult | ReproducibleResult>(argv, () => (argv['verify-reproducible'] ? verifyReproducible(opts) : build(opts)), human);
  },
};
