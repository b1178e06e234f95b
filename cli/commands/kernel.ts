import type { CommandModule } from 'yargs';
import { OsbuilderError } from '../../core/errors.js';
import { buildKernel, configKernel, diffKernel, installKernel, setupKernel, type ConfigDiff, type ConfigSummary } from '../../kernel/index.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface KernelArgs extends GlobalArgs {
  action: 'setup' | 'config' | 'build' | 'install' | 'diff';
  left?: string;
  right?: string;
  'kernel-version'?: string;
  source?: string;
  sha256?: string;
  arch?: string;
  gpu?: string;
  confidential?: string;
  force?: boolean;
  'kernel-dir'?: string;
  fragment?: string[];
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
  const lines = [`  verified: ${v.present}/${v.requested} requested options present${v.ignored.length ? `, ${v.ignored.length} ignored` : ''}`];
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

export const kernelCommand: CommandModule<GlobalArgs, KernelArgs> = {
  command: 'kernel <action> [left] [right]',
  describe:
    "Guest kernel: setup (source + verified .config), config (report only), build, install (Kata's build-kernel.sh); diff <left> <right> compares two configs",
  builder: (y) =>
    y
      .positional('action', { choices: ['setup', 'config', 'build', 'install', 'diff'] as const, demandOption: true })
      .positional('left', {
        type: 'string',
        describe:
          'diff: one side: a .config file, a fragments directory (common/*.conf + <arch>/*.conf as in Kata, else its *.conf), or ours (resolved in --kernel-dir, else our merged fragments)',
      })
      .positional('right', {
        type: 'string',
        describe: 'diff: the other side, the same kinds; grouped by Kconfig menu with --kernel-dir (or a kernel tree in the build cache)',
      })
      .option('kernel-version', {
        alias: 'v',
        type: 'string',
        describe: 'Kernel version, MAJOR.MINOR[.PATCH] (downloads linux-<v>.tar.xz from kernel.org unless --source)',
      })
      .option('source', { type: 'string', describe: 'Kernel tarball (.tar.xz/.tar.gz), local path or URL' })
      .option('sha256', { type: 'string', describe: 'Expected sha256 of the tarball (kernel.org: read from its sha256sums.asc)' })
      .option('arch', { alias: 'a', type: 'string', describe: 'x86_64, aarch64, ppc64le or s390x (default: the host)' })
      .option('gpu', { alias: 'g', type: 'string', describe: 'GPU variant: nvidia (modules, VFIO, no nouveau; builds headers tarball + .deb)' })
      .option('confidential', { type: 'string', choices: ['tdx', 'sev', 'snp'], describe: 'Confidential guest fragments' })
      .option('force', {
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
      .option('fragment', { type: 'string', array: true, describe: 'Extra config fragment merged last (repeatable)' })
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
      .option('prefix', { type: 'string', default: '/', describe: 'install: files go to <prefix>/usr/share/kata-containers' }) as never,
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
    const common = {
      version: argv['kernel-version'],
      source: argv.source,
      sha256: argv.sha256,
      arch: argv.arch,
      gpu: argv.gpu,
      confidential: argv.confidential,
      force: argv.force,
      kernelDir: argv['kernel-dir'],
      fragments: argv.fragment,
    };
    switch (argv.action) {
      case 'diff':
        return runCommand(
          argv,
          async () => {
            if (argv.left === undefined || argv.right === undefined) {
              throw new OsbuilderError('USAGE', 'kernel diff needs two sides', 'e.g. osbuilder kernel diff ours kata/tools/packaging/kernel/configs/fragments');
            }
            return diffKernel({
              left: argv.left,
              right: argv.right,
              arch: argv.arch,
              gpu: argv.gpu,
              confidential: argv.confidential,
              kernelDir: argv['kernel-dir'],
              fragments: argv.fragment,
            });
          },
          diffLines,
        );
      case 'setup':
        return runCommand(
          argv,
          () => setupKernel(common),
          (r) =>
            [
              `kernel tree ${r.kernelDir}`,
              `  Linux ${r.version} ${r.arch} ${r.variant}, kata_config_version ${r.configVersion}`,
              `  .config ${r.config}`,
              `  source sha256 ${r.source.sha256 || '(existing tree)'}${r.source.reused ? ' (reused)' : ''}`,
              ...verifyLines(r.verify),
            ].join('\n'),
        );
      case 'config':
        return runCommand(
          argv,
          () => configKernel({ ...common, output: argv.output }),
          (r) => {
            const report = [
              `config for Linux ${r.version} ${r.arch} ${r.variant} (kata_config_version ${r.configVersion}): verified`,
              `  fragments: ${r.fragments.join(' ')}`,
              ...verifyLines(r.verify),
              ...(r.output ? [`  written to ${r.output}`] : []),
            ].join('\n');
            if (r.text === undefined) return report;
            process.stderr.write(`${report}\n`);
            return r.text;
          },
        );
      case 'build':
        return runCommand(
          argv,
          () =>
            buildKernel({
              ...common,
              engine: argv.engine,
              jobs: argv['make-jobs'],
              headersOnly: argv['headers-only'],
              noDeb: argv.deb === false,
              mirror: argv.mirror,
            }),
          (r) =>
            [
              `built Linux ${r.kernelRelease} (${r.arch}, ${r.engine}, -j${r.jobs}) in ${r.kernelDir}`,
              ...(r.vmlinuz ? [`  vmlinuz ${r.vmlinuz}`, `  vmlinux ${r.vmlinux}`] : []),
              ...(r.headersTarball ? [`  headers ${r.headersTarball}`] : []),
              ...(r.debs ?? []).map((d) => `  deb ${d}`),
              ...(r.builderImage ? [`  builder image ${r.builderImage}`] : []),
              ...r.notes.map((n) => `  note: ${n}`),
            ].join('\n'),
        );
      case 'install':
        return runCommand(
          argv,
          () => installKernel({ ...common, prefix: argv.prefix }),
          (r) =>
            [
              `installed Linux ${r.version} (kata_config_version ${r.configVersion}) into ${r.dir}`,
              ...r.installed.map((i) => `  ${i.status.padEnd(9)} ${i.path}${i.target ? ` -> ${i.target}` : ''}`),
            ].join('\n'),
        );
    }
  },
};
