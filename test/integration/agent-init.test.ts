/**
 * The agent as PID 1 without a VM: `unshare --pid --fork --mount` makes it the
 * init of a new PID namespace with a private mount namespace, so its early
 * mounts, zombie reaping and power-off path run for real (a reboot() in a
 * child PID namespace ends that namespace's init with SIGINT).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAgentBinary } from '../../agent/index.js';
import { AgentClient } from '../../runtime/agent-client.js';
import { TtrpcClient } from '../../runtime/ttrpc.js';
import { testCache } from '../support/fixtures.js';

let proc: ResultPromise | undefined;
let dir: string | undefined;

afterEach(async () => {
  proc?.kill('SIGKILL');
  await proc;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startInit(): Promise<{ client: AgentClient; log: () => string }> {
  const bin = (await defaultAgentBinary()).path;
  // Not under /tmp, /run or /dev: the agent mounts fresh file systems there in its namespace.
  dir = join(testCache, `agent-init-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const sock = join(dir, 'agent.sock');
  proc = execa('unshare', ['--pid', '--fork', '--kill-child', '--mount', '--propagation', 'private', bin, '--listen', `unix:${sock}`], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: false });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    proc!.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('listening on')) resolve();
    });
    void proc!.then((r) => reject(new Error(`agent exited (${r.exitCode}):\n${log}`)));
  });
  expect(log).toMatch(/listening on unix:.*\(init\)/);
  const { client } = await TtrpcClient.connectUnix(sock);
  return { client: new AgentClient(client), log: () => log };
}

describe('agent as PID 1 (in a PID namespace)', () => {
  it('mounts proc, sys, devtmpfs, devpts, /run and /tmp', { timeout: 60_000 }, async () => {
    const { client } = await startInit();
    const r = await client.exec({ argv: ['cat', '/proc/mounts'] });
    const mounts = r.stdout
      .toString()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([, target, type]) => `${target} ${type}`);
    for (const m of ['/proc proc', '/sys sysfs', '/dev devtmpfs', '/dev/pts devpts', '/dev/shm tmpfs', '/run tmpfs', '/tmp tmpfs']) expect(mounts).toContain(m);
    // A fresh /proc for the namespace: the agent is pid 1 there.
    const pid1 = await client.exec({ argv: ['cat', '/proc/1/comm'] });
    expect(pid1.stdout.toString()).toBe('kata-agent\n');
    client.close();
  });

  it('reaps orphans reparented to it', { timeout: 60_000 }, async () => {
    const { client } = await startInit();
    // The inner shell records its pid and outlives its parent: it becomes the agent's child.
    const r = await client.exec({ argv: ['sh', '-c', 'sh -c "echo \\$\\$ > /run/orphan; exec sleep 0.3" & exit 0'] });
    expect(r.exitCode).toBe(0);
    let pid = '';
    while (!pid) pid = (await client.exec({ argv: ['cat', '/run/orphan'] })).stdout.toString().trim();
    const ppid = await client.exec({ argv: ['sh', '-c', `awk '{print $4}' /proc/${pid}/stat 2>/dev/null || true`] });
    if (ppid.stdout.toString().trim()) expect(ppid.stdout.toString().trim()).toBe('1');
    // Until the agent reaps it, /proc/<pid> stays (as a zombie once it exits).
    for (;;) {
      const st = await client.exec({ argv: ['cat', `/proc/${pid}/stat`] });
      if (st.exitCode !== 0) break;
    }
    client.close();
  });

  it('powers off on Shutdown: the namespace init ends as a power-off (SIGINT)', { timeout: 60_000 }, async () => {
    const { client, log } = await startInit();
    // A process that ignores nothing: power-off must take it down too.
    await client.exec({ argv: ['sh', '-c', 'sleep 600 > /dev/null 2>&1 &'] });
    await client.shutdown();
    const r = await proc!;
    expect(log()).toMatch(/powering off/);
    // unshare re-raises the child's fatal signal on itself.
    expect(r.signal ?? `exit ${r.exitCode}`).toBe('SIGINT');
    proc = undefined;
  });
});
