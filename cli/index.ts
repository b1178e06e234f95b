#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { TOOL_VERSION } from '../core/version.js';
import { OsbuilderError } from '../core/errors.js';

const parser = yargs(hideBin(process.argv))
  .scriptName('osbuilder')
  .usage('$0 <command> [options]\n\nBuild and boot-test Kata Containers guest artifacts.')
  .option('json', { type: 'boolean', default: false, global: true, describe: 'Print one JSON object (result or error) on stdout' })
  .option('debug', { type: 'boolean', default: false, global: true, describe: 'Show every command run and its output' })
  .version(TOOL_VERSION)
  .strict()
  .demandCommand(1, 'Name a command (osbuilder --help lists them)')
  .recommendCommands()
  .wrap(Math.min(110, process.stdout.columns || 110))
  .fail((msg, err) => {
    if (err) throw err;
    const json = process.argv.includes('--json');
    const e = new OsbuilderError('USAGE', msg, 'see osbuilder <command> --help');
    if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() }, null, 2)}\n`);
    else process.stderr.write(`error[USAGE]: ${msg}\n  hint: ${e.hint}\n`);
    process.exit(2);
  });

for (const command of commands) parser.command(command);

await parser.parseAsync();
