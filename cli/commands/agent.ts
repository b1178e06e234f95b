import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { buildAgent, type AgentEngine } from '../../agent/index.js';
import { ARCHES, parseArch } from '../../core/arch.js';
import { runCommand, type GlobalArgs } from '../output.js';

interface AgentArgs extends GlobalArgs {
  action: 'build';
  output: string;
  engine: AgentEngine;
  arch?: string;
  mirror?: string;
}

export const agentCommand: CommandModule<GlobalArgs, AgentArgs> = {
  command: 'agent <action>',
  describe: "Build osbuilder's guest agent (static C; Kata's grpc.AgentService and grpc.Health over ttrpc), installed as /usr/bin/kata-agent",
  builder: (y) =>
    y
      .positional('action', { choices: ['build'] as const, demandOption: true, describe: 'build: compile the agent (cached by source hash)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'Where to write the binary' })
      .option('engine', {
        type: 'string',
        choices: ['native', 'docker', 'podman'],
        default: 'native',
        describe: 'Compile on the host, or in a builder container made locally from Debian',
      })
      .option('arch', { type: 'string', describe: `Target architecture (${ARCHES.join(', ')}); default: the host` })
      .option('mirror', { type: 'string', describe: 'Debian mirror for the builder image (container engines)' }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      async () => {
        const arch = argv.arch === undefined ? undefined : parseArch(argv.arch);
        return buildAgent({ output: resolve(argv.output), engine: argv.engine, ...(arch ? { arch } : {}), ...(argv.mirror ? { mirror: argv.mirror } : {}) });
      },
      (r) =>
        `agent ${r.path}\n  ${r.version}, ${r.arch}, ${r.compiler} (${r.libc}, static)${r.engine === 'native' ? '' : ` in ${r.engine}`}, ${r.size} bytes, sha256 ${r.sha256}${r.cached ? ' (cached)' : ''}`,
    ),
};
