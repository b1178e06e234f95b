/**
 * The agent as a host process on a unix socket (--listen unix:), for protocol
 * and container tests without a VM. It runs in a mount namespace of its own
 * (unshare -m): the storages a test's CreateSandbox mounts never reach the
 * host's mount table, and go away with the agent. Readiness = the agent's own
 * "listening on" line.
 */
import { execa, type ResultPromise } from 'execa';
import { rm } from 'node:fs/promises';
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

/** `binary` defaults to the host's agent; `emulator` (e.g. qemu-aarch64-static) runs another arch's. */
export async function startHostAgent(extraArgs: string[] = [], opts: { binary?: string; emulator?: string } = {}): Promise<HostAgent> {
  const binary = opts.binary ?? (await agentBinary());
  const dir = await makeTempDir('osb-agent-');
  const socketPath = join(dir, 'agent.sock');
  const argv = [...(opts.emulator ? [opts.emulator] : []), binary, '--listen', `unix:${socketPath}`, ...extraArgs];
  const proc = execa('unshare', ['--mount', '--propagation', 'private', '--', ...argv], {
    reject: false,
    stdin: 'ignore',
    buffer: false,
    stdout: 'ignore',
    stderr: 'pipe',
  });
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
      await rm(dir, { recursive: true, force: true });
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
