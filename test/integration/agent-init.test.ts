/**
 * The agent as PID 1 without a VM: `unshare --pid --fork --mount` makes it the
 * init of a new PID namespace with a private mount namespace, so its early
 * mounts, zombie reaping and power-off path run for real (a reboot() in a
 * child PID namespace ends that namespace's init with SIGINT). The agent is
 * looked at from containers it runs, through Kata's API only: a bind of its
 * /proc shows its mounts and its processes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultAgentBinary } from '../../agent/index.js';
import { AgentClient } from '../../runtime/agent-client.js';
import { TtrpcClient } from '../../runtime/ttrpc.js';
import { AgentService, GuestContainer, bindMount, defaultContainerRootfs, defaultSpec, setRoot } from '../../runtime/index.js';
import { testCache } from '../support/fixtures.js';

let proc: ResultPromise | undefined;
let dir: string | undefined;
let seq = 0;

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
  proc = execa('unshare', ['--pid', '--fork', '--kill-child', '--mount', '--propagation', 'private', bin, '--listen', `unix:${sock}`], {
    reject: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: false,
  });
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
  const c = new AgentClient(client);
  await c.call(AgentService.method.createSandbox, { hostname: 'init-test', sandboxId: 'init-test' });
  return { client: c, log: () => log };
}

/** Runs `args` in a busybox container that sees the agent's /proc at /guest/proc: [status, stdout]. */
async function run(client: AgentClient, args: string[]): Promise<[number, string]> {
  const id = `init-ctr-${++seq}`;
  const spec = defaultSpec({ args, hostname: 'init-test' });
  setRoot(spec, (await defaultContainerRootfs()).path, true);
  spec.Mounts.push(bindMount('/proc', '/guest/proc'));
  await client.call(AgentService.method.createContainer, { containerId: id, execId: id, OCI: spec });
  const c = new GuestContainer(client, id);
  await c.start();
  const out: Uint8Array[] = [];
  const status = await c.init.run({ onStdout: (b) => out.push(b) });
  await c.remove();
  return [status, Buffer.concat(out).toString()];
}

describe('agent as PID 1 (in a PID namespace)', () => {
  it('mounts proc, sys, devtmpfs, devpts, shm, /run, /tmp and the cgroup2 hierarchy', { timeout: 60_000 }, async () => {
    const { client } = await startInit();
    const [status, out] = await run(client, ['sh', '-c', 'cat /guest/proc/1/mounts; echo; cat /guest/proc/1/comm']);
    expect(status).toBe(0);
    const [mountText, comm] = out.split('\n\n');
    const mounts = mountText!
      .split('\n')
      .map((l) => l.split(' '))
      .map(([, target, type]) => `${target} ${type}`);
    for (const m of ['/proc proc', '/sys sysfs', '/dev devtmpfs', '/dev/pts devpts', '/dev/shm tmpfs', '/run tmpfs', '/tmp tmpfs', '/sys/fs/cgroup cgroup2'])
      expect(mounts).toContain(m);
    // A fresh /proc for the namespace: the agent is pid 1 there.
    expect(comm).toBe('kata-agent\n');
    client.close();
  });

  it('reaps what a container leaves: no zombie is left in its namespace', { timeout: 60_000 }, async () => {
    const { client } = await startInit();
    // Background children outlive the container's shell: the pid namespace's end kills them.
    expect((await run(client, ['sh', '-c', 'sleep 600 & sleep 600 & exit 0']))[0]).toBe(0);
    // Every process of the agent's namespace, with its state; a zombie would show as Z.
    const script = 'for s in /guest/proc/[0-9]*/stat; do read -r pid comm state rest < $s && echo "$pid $comm $state"; done';
    let zombies = ['?'];
    for (let i = 0; i < 50 && zombies.length; i++) {
      const [, out] = await run(client, ['sh', '-c', script]);
      zombies = out.split('\n').filter((l) => / Z$/.test(l));
    }
    expect(zombies).toEqual([]);
    client.close();
  });

  it('powers off on DestroySandbox with a container running: the namespace init ends as a power-off (SIGINT)', { timeout: 60_000 }, async () => {
    const { client, log } = await startInit();
    const spec = defaultSpec({ args: ['sleep', '600'], hostname: 'init-test' });
    setRoot(spec, (await defaultContainerRootfs()).path, true);
    await client.call(AgentService.method.createContainer, { containerId: 'sleeper', execId: 'sleeper', OCI: spec });
    await client.call(AgentService.method.startContainer, { containerId: 'sleeper' });
    await client.call(AgentService.method.destroySandbox, {});
    const r = await proc!;
    expect(log()).toMatch(/powering off/);
    // unshare re-raises the child's fatal signal on itself.
    expect(r.signal ?? `exit ${r.exitCode}`).toBe('SIGINT');
    proc = undefined;
  });
});
