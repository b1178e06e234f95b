/**
 * The agent as a host process on a unix socket (--listen unix:), for protocol
 * tests without a VM. Readiness = the agent's own "listening on" line.
 */
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { defaultAgentBinary } from '../../agent/index.js';
import { AgentClient } from '../../runtime/agent-client.js';
import { TtrpcClient } from '../../runtime/ttrpc.js';
import { makeTempDir } from './fixtures.js';

export interface HostAgent {
  binary: string;
  socketPath: string;
  proc: ResultPromise;
  /** Everything the agent wrote to stderr so far. */
  log: () => string;
  connect: () => Promise<{ client: AgentClient; socket: Socket }>;
  stop: () => Promise<void>;
}

export async function agentBinary(): Promise<string> {
  return (await defaultAgentBinary()).path;
}

export async function startHostAgent(extraArgs: string[] = []): Promise<HostAgent> {
  const binary = await agentBinary();
  const dir = await makeTempDir('osb-agent-');
  const socketPath = join(dir, 'agent.sock');
  const proc = execa(binary, ['--listen', `unix:${socketPath}`, ...extraArgs], { reject: false, stdin: 'ignore', buffer: false, stdout: 'ignore', stderr: 'pipe' });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('listening on')) resolve();
    });
    void proc.then((r) => reject(new Error(`agent exited (${r.exitCode}) before listening:\n${log}`)));
  });
  return {
    binary,
    socketPath,
    proc,
    log: () => log,
    connect: async () => {
      const { client, socket } = await TtrpcClient.connectUnix(socketPath);
      return { client: new AgentClient(client), socket };
    },
    stop: async () => {
      proc.kill('SIGTERM');
      await proc;
    },
  };
}

/**
 * A busybox root filesystem with osbuilder's agent as /init and /sbin/init
 * (Kata's AGENT_INIT=yes), or with `init` as /init instead (bad guests).
 */
export async function agentRootfs(dir: string, opts: { init?: string } = {}): Promise<string> {
  const { makeBusyboxRootfs } = await import('./fixtures.js');
  const { rm, symlink } = await import('node:fs/promises');
  await makeBusyboxRootfs(dir, { agent: { copyFrom: await agentBinary() }, ...(opts.init ? { init: opts.init } : {}) });
  if (!opts.init) {
    await rm(join(dir, 'init'));
    await symlink('usr/bin/kata-agent', join(dir, 'init'));
  }
  return dir;
}
