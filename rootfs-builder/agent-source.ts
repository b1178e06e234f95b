/**
 * Where the agent binary comes from: --agent/AGENT_SOURCE_BIN, or osbuilder's
 * own agent built by the agent stage (its public entry point, agent/index.ts).
 */
import { stat } from 'node:fs/promises';
import { OsbuilderError } from '../core/errors.js';
import type { Arch } from '../core/arch.js';
import { checkElfForArch, readElf } from './elf.js';
import { defaultAgentBinary } from '../agent/index.js';

export interface AgentBinary {
  path: string;
  /** 'default' for osbuilder's own agent, else the file name given. */
  source: string;
  interpreter?: string;
}

/** Checks a user-given agent before any expensive work: exists, regular file, ELF for the arch. */
export async function checkAgentFile(path: string, arch: Arch): Promise<AgentBinary> {
  const st = await stat(path).catch(() => undefined);
  if (!st) {
    throw new OsbuilderError(
      'MISSING_AGENT',
      `agent binary ${path} does not exist`,
      "give the path of a built kata-agent with --agent (or AGENT_SOURCE_BIN), or omit it to use osbuilder's own agent",
    );
  }
  if (!st.isFile()) throw new OsbuilderError('AGENT_INVALID', `agent ${path} is not a regular file`, 'give the agent binary itself, not a directory');
  const interpreter = checkElfForArch(await readElf(path), arch, `agent ${path}`);
  return { path, source: path.split('/').pop() ?? path, ...(interpreter !== undefined ? { interpreter } : {}) };
}

/** osbuilder's own agent for `arch`, from the agent stage's cache (built there on first use). */
export async function defaultAgent(arch: Arch): Promise<AgentBinary> {
  const built = await defaultAgentBinary({ arch });
  const checked = await checkAgentFile(built.path, arch);
  return { ...checked, source: 'default' };
}
