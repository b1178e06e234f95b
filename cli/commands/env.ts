import type { CommandModule } from 'yargs';
import { collectEnv, envToml, resolveRuntimeConfig } from '../../runtime/index.js';
import { warn } from '../../core/log.js';
import { runCommand, type GlobalArgs } from '../output.js';
import { overridesFrom, runtimeOptions, type RuntimeArgs } from './boot.js';

interface EnvArgs extends RuntimeArgs {
  fresh?: boolean;
}

export const envCommand: CommandModule<GlobalArgs, EnvArgs> = {
  command: 'env',
  describe: 'Show the resolved runtime configuration and the host (like kata-env): TOML, or JSON with --json',
  builder: (y) => runtimeOptions(y).option('fresh', { type: 'boolean', describe: 'Ignore a cached KVM probe verdict' }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      async () => {
        const config = await resolveRuntimeConfig({ ...(argv.config ? { configFile: argv.config } : {}), overrides: overridesFrom(argv) });
        for (const w of config.warnings) warn(w);
        return collectEnv(config, argv.fresh ? { fresh: true } : {});
      },
      envToml,
    ),
};
