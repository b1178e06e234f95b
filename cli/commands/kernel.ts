import type { CommandModule } from 'yargs';
import { buildKernel, configKernel, installKernel, setupKernel, type ConfigSummary } from '../../kernel/index.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface KernelArgs extends GlobalArgs {
  action: 'setup' | 'config' | 'build' | 'install';
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
  jobs?: number;
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

export const kernelCommand: CommandModule<GlobalArgs, KernelArgs> = {
  command: 'kernel <action>',
  describe: "Guest kernel: setup (source + verified .config), config (report only), build, install (Kata's build-kernel.sh)",
  builder: (y) =>
    y
      .positional('action', { choices: ['setup', 'config', 'build', 'install'] as const, demandOption: true })
      .option('kernel-version', { alias: 'v', type: 'string', describe: 'Kernel version, MAJOR.MINOR[.PATCH] (downloads linux-<v>.tar.xz from kernel.org unless --source)' })
      .option('source', { type: 'string', describe: 'Kernel tarball (.tar.xz/.tar.gz), local path or URL' })
      .option('sha256', { type: 'string', describe: 'Expected sha256 of the tarball (kernel.org: read from its sha256sums.asc)' })
      .option('arch', { alias: 'a', type: 'string', describe: 'x86_64, aarch64, ppc64le or s390x (default: the host)' })
      .option('gpu', { alias: 'g', type: 'string', describe: 'GPU variant: nvidia (modules, VFIO, no nouveau; builds headers tarball + .deb)' })
      .option('confidential', { type: 'string', choices: ['tdx', 'sev', 'snp'], describe: 'Confidential guest fragments' })
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'setup: replace a tree holding other source; install: replace different installed files' })
      .option('kernel-dir', { alias: 'k', type: 'string', describe: 'Source tree directory (default ./kata-linux-<version>-<config version>[-nvidia-gpu])' })
      .option('fragment', { type: 'string', array: true, describe: 'Extra config fragment merged last (repeatable)' })
      .option('output', { alias: 'o', type: 'string', describe: 'config: also write the verified config to this file (- prints it on stdout, the report on stderr)' })
      .option('engine', { type: 'string', choices: ['native', 'docker'] as const, default: 'native', describe: 'build: run make here or in a locally bootstrapped Debian builder container' })
      .option('jobs', { alias: 'j', type: 'number', describe: 'build: make -j (default: all cores)' })
      .option('headers-only', { type: 'boolean', default: false, describe: 'build (-g nvidia): only modules_prepare + the headers tarball' })
      .option('deb', { type: 'boolean', default: true, describe: 'build (-g nvidia): also make bindeb-pkg when dpkg-buildpackage exists (--no-deb skips)' })
      .option('mirror', { type: 'string', describe: 'build --engine docker: Debian mirror for the builder image' })
      .option('prefix', { type: 'string', default: '/', describe: 'install: files go to <prefix>/usr/share/kata-containers' }) as never,
  handler: (argv) => {
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
      case 'setup':
        return runCommand(argv, () => setupKernel(common), (r) =>
          [`kernel tree ${r.kernelDir}`, `  Linux ${r.version} ${r.arch} ${r.variant}, kata_config_version ${r.configVersion}`, `  .config ${r.config}`, `  source sha256 ${r.source.sha256 || '(existing tree)'}${r.source.reused ? ' (reused)' : ''}`, ...verifyLines(r.verify)].join('\n'),
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
            process.stderr.write(report + '\n');
            return r.text;
          },
        );
      case 'build':
        return runCommand(
          argv,
          () => buildKernel({ ...common, engine: argv.engine, jobs: argv.jobs, headersOnly: argv['headers-only'], noDeb: argv.deb === false, mirror: argv.mirror }),
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
        return runCommand(argv, () => installKernel({ ...common, prefix: argv.prefix }), (r) =>
          [`installed Linux ${r.version} (kata_config_version ${r.configVersion}) into ${r.dir}`, ...r.installed.map((i) => `  ${i.status.padEnd(9)} ${i.path}${i.target ? ` -> ${i.target}` : ''}`)].join('\n'),
        );
    }
  },
};
