import type { CommandModule } from 'yargs';
import { agentCommand } from './agent.js';
import { bootCommand } from './boot.js';
import { buildCommand } from './build.js';
import { cacheCommand } from './cache.js';
import { checkCommand } from './check.js';
import { distrosCommand } from './distros.js';
import { envCommand } from './env.js';
import { imageCommand } from './image.js';
import { initrdCommand } from './initrd.js';
import { kernelCommand } from './kernel.js';
import { matrixCommand } from './matrix.js';
import { rootfsCommand } from './rootfs.js';

// One line per command module; keep them sorted by name.
// biome-ignore lint/suspicious/noExplicitAny: each command module has its own argument types; the list holds them all
export const commands: CommandModule<any, any>[] = [
  agentCommand,
  bootCommand,
  buildCommand,
  cacheCommand,
  checkCommand,
  distrosCommand,
  envCommand,
  imageCommand,
  initrdCommand,
  kernelCommand,
  matrixCommand,
  rootfsCommand,
];
