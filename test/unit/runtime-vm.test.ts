/**
 * The VM lifecycle (runtime/vm.ts) with a stand-in for QEMU: a shell that
 * writes console lines and then panics, sleeps or exits, and an in-process
 * ttrpc server on the agent socket. Proves the error paths (panic, timeout,
 * QEMU exit: each with the last console lines), waiting for the agent, and
 * that the process is always killed (interrupt included). No QEMU.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vm } from '../../runtime/vm.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { SERVING_STATUS } from '../../runtime/agent-client.js';
import { FrameDecoder, encodeFrame, MESSAGE_TYPE_RESPONSE } from '../../runtime/ttrpc.js';
import { RequestSchema, ResponseSchema } from '../../runtime/gen/ttrpc_pb.js';
import { HealthCheckResponseSchema, VersionCheckResponseSchema } from '../../runtime/gen/health_pb.js';
import { runInterruptHandlers } from '../../core/cleanup.js';
import type { OsbuilderError } from '../../core/errors.js';

const started: Vm[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const vm of started.splice(0)) await vm.kill();
  for (const c of cleanups.splice(0)) await c();
});

async function runDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'osb-vm-unit-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A "QEMU" that runs `script` in sh; its stdout is the guest console. */
async function fakeVm(script: string): Promise<{ vm: Vm; socket: string }> {
  const socket = join(await runDir(), 'agent.sock');
  const vm = Vm.start({ plan: { cmd: 'sh', args: ['-c', script], kernelParams: [] }, channel: { kind: 'serial', socket } });
  started.push(vm);
  return { vm, socket };
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function rejection(p: Promise<unknown>): Promise<OsbuilderError> {
  try {
    await p;
  } catch (err) {
    return err as OsbuilderError;
  }
  throw new Error('expected a rejection');
}

/**
 * A minimal agent: Check, Version, DestroySandbox (which runs `onDestroy`; with `refuse` it
 * answers NOT_FOUND, as an agent without the method would).
 */
function fakeAgent(path: string, onDestroy: () => void = () => undefined, refuse = false): Promise<Server> {
  const server = createServer((s) => {
    const d = new FrameDecoder();
    s.on('data', (chunk: Buffer) => {
      for (const f of d.push(chunk)) {
        const r = fromBinary(RequestSchema, f.payload);
        let payload = new Uint8Array();
        if (r.method === 'Check') payload = toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: SERVING_STATUS.SERVING }));
        else if (r.method === 'Version')
          payload = toBinary(VersionCheckResponseSchema, create(VersionCheckResponseSchema, { grpcVersion: '0.0.1', agentVersion: 'fake' }));
        const status =
          refuse && r.method === 'DestroySandbox' ? { code: 5, message: '/grpc.AgentService/DestroySandbox is not supported' } : { code: 0, message: '' };
        s.write(encodeFrame(f.streamId, MESSAGE_TYPE_RESPONSE, Buffer.from(toBinary(ResponseSchema, create(ResponseSchema, { status, payload })))));
        if (r.method === 'DestroySandbox') onDestroy();
      }
    });
    s.on('error', () => undefined);
  });
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

/** A QMP monitor that greets, takes qmp_capabilities and runs `onQuit` for quit. */
function fakeQmp(path: string, onQuit: () => void): Promise<Server> {
  const server = createServer((s) => {
    s.write('{"QMP": {"version": {}, "capabilities": []}}\n');
    s.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        const cmd = (JSON.parse(line) as { execute: string }).execute;
        s.write('{"return": {}}\n');
        if (cmd === 'quit') onQuit();
      }
    });
    s.on('error', () => undefined);
  });
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

describe('Vm: the guest fails', () => {
  it('a dm-verity corruption report before the panic makes it VERITY_FAILED, the report first', async () => {
    const { vm } = await fakeVm(
      'echo "device-mapper: verity: 254:0: metadata block 0 is corrupted"; echo "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(254,0)"; exec sleep 1000',
    );
    const e = await rejection(vm.waitForAgent(vm.startedAt + 120_000));
    expect(e.code).toBe('VERITY_FAILED');
    expect(e.message).toMatch(
      /^dm-verity verification of the root image failed: device-mapper: verity: 254:0: metadata block 0 is corrupted\nthen a kernel panic before the agent answered: Kernel panic - not syncing: VFS: Unable to mount root fs/,
    );
    expect(e.hint).toMatch(/does not match kernel_verity_params/);
    expect(vm.verityLine).toBe('device-mapper: verity: 254:0: metadata block 0 is corrupted');
  });

  it('a dm-verity report and no agent by the deadline is VERITY_FAILED too; other device-mapper lines are not', async () => {
    const { vm } = await fakeVm('echo "device-mapper: verity: 254:1: data block 7 is corrupted"; exec sleep 1000');
    const e = await rejection(vm.waitForAgent(vm.startedAt + 1500));
    expect(e.code).toBe('VERITY_FAILED');
    expect(e.message).toMatch(/then the agent did not answer within 1\.5s/);
    const { vm: other } = await fakeVm('echo "device-mapper: init: dm-0 is ready"; exec sleep 1000');
    expect((await rejection(other.waitForAgent(other.startedAt + 1000))).code).toBe('BOOT_TIMEOUT');
    expect(other.verityError('x')).toBeUndefined();
  });

  it('a kernel panic is BOOT_FAILED with the panic line and the last console lines; kill() ends QEMU', async () => {
    const { vm } = await fakeVm('echo OSB-BOOTING; echo "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000"; exec sleep 1000');
    const e = await rejection(vm.waitForAgent(vm.startedAt + 120_000));
    expect(e.code).toBe('BOOT_FAILED');
    expect(e.message).toMatch(/^kernel panic before the agent answered: Kernel panic - not syncing: Attempted to kill init!/);
    expect(e.message).toMatch(/last console lines:\nOSB-BOOTING\n/);
    expect(vm.running).toBe(true); // panic=1 would end a real QEMU; the caller kills it either way
    await vm.kill();
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(gone(vm.pid!)).toBe(true);
  });

  it('an agent that never answers is BOOT_TIMEOUT with the last console lines', async () => {
    const { vm } = await fakeVm('echo OSB-INIT-SLEEPING; exec sleep 1000');
    await vm.waitForConsole(/OSB-INIT-SLEEPING/, vm.startedAt + 120_000);
    const e = await rejection(vm.waitForAgent(performance.now() + 50));
    expect(e.code).toBe('BOOT_TIMEOUT');
    expect(e.message).toMatch(/^the agent did not answer within \d+\.\ds\nlast console lines:\nOSB-INIT-SLEEPING$/);
    expect(e.hint).toMatch(/raise --timeout/);
  });

  it('QEMU exiting is BOOT_FAILED with its stderr', async () => {
    const { vm } = await fakeVm('echo "qemu-system-x86_64: could not load kernel" >&2; exit 1');
    const e = await rejection(vm.waitForAgent(vm.startedAt + 120_000));
    expect(e.code).toBe('BOOT_FAILED');
    expect(e.message).toMatch(
      /^QEMU exited with code 1 before the agent answered:\nqemu-system-x86_64: could not load kernel\n\(the guest wrote nothing to the console\)$/,
    );
  });

  it('an interrupt (SIGINT/SIGTERM cleanup) kills QEMU', async () => {
    const { vm } = await fakeVm('echo up; exec sleep 1000');
    await vm.waitForConsole(/up/, vm.startedAt + 120_000);
    await runInterruptHandlers();
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(gone(vm.pid!)).toBe(true);
  });
});

describe('Vm: the agent answers', () => {
  it('waits for the channel to appear, then Check = SERVING; DestroySandbox powers the guest off: clean', async () => {
    const { vm, socket } = await fakeVm('echo up; exec sleep 1000');
    const ready = vm.waitForAgent(vm.startedAt + 120_000);
    // The socket appears only after the guest has started: the first connects fail, the wait retries.
    await vm.waitForConsole(/up/, vm.startedAt + 120_000);
    await fakeAgent(socket, () => process.kill(vm.pid!, 'SIGTERM'));
    const { client, readyMs } = await ready;
    expect(readyMs).toBeGreaterThan(0);
    expect(await client.version()).toEqual({ grpcVersion: '0.0.1', agentVersion: 'fake' });
    expect(await vm.shutdown()).toBe('clean');
    expect(vm.running).toBe(false);
  });

  it('a guest that does not power off after DestroySandbox is stopped with QMP quit, as kata-runtime does', async () => {
    const dir = await runDir();
    const socket = join(dir, 'agent.sock');
    const qmp = join(dir, 'qmp.sock');
    const vm = Vm.start({
      plan: { cmd: 'sh', args: ['-c', 'echo up; exec sleep 1000'], kernelParams: [] },
      channel: { kind: 'serial', socket },
      qmpSocket: qmp,
    });
    started.push(vm);
    await fakeAgent(socket);
    await fakeQmp(qmp, () => process.kill(vm.pid!, 'SIGTERM'));
    await vm.waitForAgent(vm.startedAt + 120_000);
    expect(await vm.shutdown(50)).toBe('quit');
    expect(vm.running).toBe(false);
  });

  it('kills QEMU when neither the guest nor QMP stops it', async () => {
    const { vm, socket } = await fakeVm('echo up; exec sleep 1000');
    await fakeAgent(socket);
    await vm.waitForAgent(vm.startedAt + 120_000);
    expect(await vm.shutdown(50)).toBe('killed');
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(gone(vm.pid!)).toBe(true);
  });

  it('does not wait out the grace when the agent refuses DestroySandbox', async () => {
    const { vm, socket } = await fakeVm('echo up; exec sleep 1000');
    await fakeAgent(socket, () => undefined, true);
    await vm.waitForAgent(vm.startedAt + 120_000);
    // With a 600 s grace this would time the test out if it waited for a power-off.
    expect(await vm.shutdown(600_000)).toBe('killed');
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });
});
