import type { CommandModule } from 'yargs';
import { cacheCommand } from './cache.js';

// One line per command module; keep them sorted by name.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  cacheCommand,
];
