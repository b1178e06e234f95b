import type { CommandModule } from 'yargs';
import { matrixFilter, matrixRows, renderMatrix, type MatrixFormat } from '../../pipeline/index.js';
import { runCommand, type GlobalArgs } from '../output.js';
import { ARCHES } from '../../core/arch.js';

interface MatrixArgs extends GlobalArgs {
  format: MatrixFormat;
  distro: string[];
  arch: string[];
}

export const matrixCommand: CommandModule<GlobalArgs, MatrixArgs> = {
  command: 'matrix',
  describe: 'Print the distro × arch × format build matrix for a CI system to fan out over',
  builder: (y) =>
    y
      .option('format', {
        choices: ['github', 'gitlab', 'json'] as const,
        default: 'json' as const,
        describe:
          'github: a whole GitHub Actions workflow; gitlab: a whole .gitlab-ci.yml (parallel:matrix); json: the rows, each with its osbuilder build command line',
      })
      .option('distro', { type: 'string', array: true, default: [], describe: 'Only these distros' })
      .option('arch', { type: 'string', array: true, default: [], describe: `Only these arches (${ARCHES.join(', ')}; arm64, amd64 … accepted)` }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      async () => {
        const rows = matrixRows(undefined, matrixFilter(argv.distro, argv.arch));
        return { rows, text: renderMatrix(rows, argv.format) };
      },
      (r) => r.text,
    ),
};
