import type { Argv, CommandModule } from 'yargs';
import { OsbuilderError } from '../../core/errors.js';
import { KERNEL_OPTIONS } from '../../kernel/index.js';
import { addOptions, readOptions } from '../../core/options.js';
import {
  buildKernel,
  configKernel,
  diffKernel,
  installKernel,
  setupKernel,
  type BuildResult,
  type ConfigDiff,
  type ConfigResult,
  type ConfigSummary,
  type KernelInstallResult,
  type KernelOptions,
  type SetupResult,
} from '../../kernel/index.js';
import { runCommand, type GlobalArgs } from '../output.js';

/** The command's own flags; those of KERNEL_OPTIONS are read from the table. */
interface KernelArgs extends GlobalArgs {
  action: 'setup' | 'config' | 'build' | 'install' | 'diff';
  left?: string;
  right?: string;
  force?: boolean;
  'kernel-dir'?: string;
  output?: string;
  engine?: 'native' | 'docker';
  'make-jobs'?: number;
  'headers-only'?: boolean;
  'no-deb'?: boolean;
  deb?: boolean;
  mirror?: string;
  prefix?: string;
}

function verifyLines(v: ConfigSummary): string[] {
  const lines = [
    `  verified: ${v.present}/${v.requested} requested options present${v.ignored.length ? `, ${v.ignored.length} ignored` : ''}${v.reused ? ' (proven before; recipe and tree files unchanged)' : ''}`,
  ];
  for (const i of v.ignored) lines.push(`    ignored CONFIG_${i.symbol} (${i.from}): ${i.ignored}`);
  for (const o of v.overrides) lines.push(`    override CONFIG_${o.symbol}: ${o.from} -> ${o.to}`);
  return lines;
}

function diffLines(d: ConfigDiff): string {
  const out = [`A: ${d.left.source}  ${d.left.detail}`, `B: ${d.right.source}  ${d.right.detail}`];
  if (d.grouping.by === 'kconfig') out.push(`grouped by Kconfig menu of ${d.grouping.tree} (${d.grouping.from})`);
  else if (d.grouping.by === 'fragment') out.push('grouped by fragment file (no kernel tree: --kernel-dir groups by Kconfig menu)');
  for (const g of d.groups) {
    const rows = [
      ...g.onlyLeft.map((e) => ['only in A', `CONFIG_${e.symbol}`, e.value]),
      ...g.onlyRight.map((e) => ['only in B', `CONFIG_${e.symbol}`, e.value]),
      ...g.differ.map((e) => ['differs', `CONFIG_${e.symbol}`, `A=${e.left} B=${e.right}`]),
    ];
    const width = Math.max(...rows.map((r) => r[1]!.length));
    out.push('', `${g.menu}:`, ...rows.map(([kind, symbol, value]) => `  ${kind!.padEnd(9)}  ${symbol!.padEnd(width)}  ${value}`));
  }
  const c = d.counts;
  out.push('', `${c.onlyLeft} only in A, ${c.onlyRight} only in B, ${c.differ} differ, ${c.same} the same`);
  return out.join('\n');
}

function setupText(r: SetupResult): string {
  return [
    `kernel tree ${r.kernelDir}`,
    `  Linux ${r.version} ${r.arch} ${r.variant}, kata_config_version ${r.configVersion}`,
    `  .config ${r.config}`,
    `  source sha256 ${r.source.sha256 || '(existing tree)'}${r.source.reused ? ' (reused)' : ''}`,
    ...verifyLines(r.verify),
  ].join('\n');
}

/** The report; with --output - the config is the output and the report goes to stderr. */
function configText(r: ConfigResult): string {
  const report = [
    `config for Linux ${r.version} ${r.arch} ${r.variant} (kata_config_version ${r.configVersion}): verified`,
    `  fragments: ${r.fragments.join(' ')}`,
    ...verifyLines(r.verify),
    ...(r.output ? [`  written to ${r.output}`] : []),
  ].join('\n');
  if (r.text === undefined) return report;
  process.stderr.write(`${report}\n`);
  return r.text;
}

function buildText(r: BuildResult): string {
  return [
    `built Linux ${r.kernelRelease} (${r.arch}, ${r.engine}, -j${r.jobs}) in ${r.kernelDir}`,
    ...(r.vmlinuz ? [`  vmlinuz ${r.vmlinuz}`, `  vmlinux ${r.vmlinux}`] : []),
    ...(r.headersTarball ? [`  headers ${r.headersTarball}`] : []),
    ...(r.debs ?? []).map((d) => `  deb ${d}`),
    ...(r.builderImage ? [`  builder image ${r.builderImage}`] : []),
    ...r.notes.map((n) => `  note: ${n}`),
  ].join('\n');
}

function installText(r: KernelInstallResult): string {
  return [
    `installed Linux ${r.version} (kata_config_version ${r.configVersion}) into ${r.dir}`,
    ...r.installed.map((i) => `  ${i.status.padEnd(9)} ${i.path}${i.target ? ` -> ${i.target}` : ''}`),
  ].join('\n');
}

/** The library's options from the table's flags and the command's -f and -k. */
function kernelOptions(argv: KernelArgs): KernelOptions {
  const o = readOptions(KERNEL_OPTIONS, argv);
  return {
    version: o.kernelVersion,
    source: o.kernelSource,
    sha256: o.kernelSha256,
    arch: o.arch,
    gpu: o.gpu,
    confidential: o.confidential,
    force: argv.force,
    kernelDir: argv['kernel-dir'],
    fragments: o.fragments,
  };
}

async function diff(argv: KernelArgs): Promise<ConfigDiff> {
  if (argv.left === undefined || argv.right === undefined) {
    throw new OsbuilderError('USAGE', 'kernel diff needs two sides', 'e.g. osbuilder kernel diff ours kata/tools/packaging/kernel/configs/fragments');
  }
  const { arch, gpu, confidential, kernelDir, fragments } = kernelOptions(argv);
  return diffKernel({ left: argv.left, right: argv.right, arch, gpu, confidential, kernelDir, fragments });
}

function runAction(argv: KernelArgs): Promise<void> {
  const common = kernelOptions(argv);
  switch (argv.action) {
    case 'diff':
      return runCommand(argv, () => diff(argv), diffLines);
    case 'setup':
      return runCommand(argv, () => setupKernel(common), setupText);
    case 'config':
      return runCommand(argv, () => configKernel({ ...common, output: argv.output }), configText);
    case 'build': {
      const make = { engine: argv.engine, jobs: argv['make-jobs'], headersOnly: argv['headers-only'], noDeb: argv.deb === false, mirror: argv.mirror };
      return runCommand(argv, () => buildKernel({ ...common, ...make }), buildText);
    }
    case 'install':
      return runCommand(argv, () => installKernel({ ...common, prefix: argv.prefix }), installText);
  }
}

function addPositionals<Y extends Argv<unknown>>(y: Y): Y {
  y.positional('action', { choices: ['setup', 'config', 'build', 'install', 'diff'] as const, demandOption: true })
    .positional('left', {
      type: 'string',
      describe:
        'diff: one side: a .config file, a fragments directory (common/*.conf + <arch>/*.conf as in Kata, else its *.conf), or ours (resolved in --kernel-dir, else our merged fragments)',
    })
    .positional('right', {
      type: 'string',
      describe: 'diff: the other side, the same kinds; grouped by Kconfig menu with --kernel-dir (or a kernel tree in the build cache)',
    });
  return y;
}

/** The flags of one action or another (the table's are every action's). */
function addActionOptions<Y extends Argv<unknown>>(y: Y): Y {
  y.option('force', {
    alias: 'f',
    type: 'boolean',
    default: false,
    describe: 'setup: replace a tree holding other source; install: replace different installed files',
  })
    .option('kernel-dir', {
      alias: 'k',
      type: 'string',
      describe:
        'Source tree directory (default ./kata-linux-<version>-<config version>[-nvidia-gpu]; diff: resolves ours there and groups by its Kconfig menus)',
    })
    .option('output', {
      alias: 'o',
      type: 'string',
      describe: 'config: also write the verified config to this file (- prints it on stdout, the report on stderr)',
    })
    .option('engine', {
      type: 'string',
      choices: ['native', 'docker'] as const,
      default: 'native',
      describe: 'build: run make here or in a locally bootstrapped Debian builder container',
    })
    .option('make-jobs', { type: 'number', describe: 'build: make -j (default: all cores)' })
    .option('headers-only', { type: 'boolean', default: false, describe: 'build (-g nvidia): only modules_prepare + the headers tarball' })
    .option('deb', { type: 'boolean', default: true, describe: 'build (-g nvidia): also make bindeb-pkg when dpkg-buildpackage exists (--no-deb skips)' })
    .option('mirror', { type: 'string', describe: 'build --engine docker: Debian mirror for the builder image' })
    .option('prefix', { type: 'string', default: '/', describe: 'install: files go to <prefix>/usr/share/kata-containers' });
  return y;
}

export const kernelCommand: CommandModule<GlobalArgs, KernelArgs> = {
  command: 'kernel <action> [left] [right]',
  describe:
    "Guest kernel: setup (source + verified .config), config (report only), build, install (Kata's build-kernel.sh); diff <left> <right> compares two configs",
  builder: (y) => addActionOptions(addOptions(addPositionals(y), KERNEL_OPTIONS, { env: false })) as never,
  handler: (argv) => {
    if (argv.action !== 'diff' && argv.left !== undefined) {
      return runCommand(
        argv,
        async () => {
          throw new OsbuilderError('USAGE', `kernel ${argv.action} takes no ${JSON.stringify(argv.left)}`, 'only kernel diff takes two sides');
        },
        () => '',
      );
    }
    return runAction(argv);
  },
};
