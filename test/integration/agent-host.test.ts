/**
 * osbuilder's agent as a host process on a unix socket: the real binary,
 * Kata's protocol. Statuses as the real kata-agent answers them (ttrpc-rust),
 * malformed and oversized frames, requests encoded by a second library
 * (protobufjs) for the C decoder, and containers for real (namespaces,
 * pivot_root, stdio, signals) in a mount namespace of the agent's own. The
 * host has no cgroup v2 controllers, so resources are tested in the guest
 * (boot-e2e); here a request for them must be refused clearly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import protobuf from 'protobufjs';
import { startHostAgent, type HostAgent } from '../support/agent.js';
import { descendants, stillThere, type Proc } from '../support/procs.js';
import { makeTempDir } from '../support/fixtures.js';
import { defaultAgentBinary } from '../../agent/index.js';
import {
  AgentService,
  GuestContainer,
  SERVING_STATUS,
  RpcError,
  defaultContainerRootfs,
  defaultSpec,
  setRoot,
  tmpfsMount,
  type AgentClient,
  type Spec,
} from '../../runtime/index.js';
import { FrameDecoder, decodeResponse, encodeFrame, encodeRequest, TTRPC_MAX_MESSAGE, type Frame } from '../../runtime/ttrpc.js';

/** A raw connection: write bytes, read frames. */
class Raw {
  private decoder = new FrameDecoder();
  private frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.frames.push(...this.decoder.push(d));
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
  }
  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }
  write(b: Buffer): void {
    this.socket.write(b);
  }
  async next(): Promise<Frame> {
    while (this.frames.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
    return this.frames.shift()!;
  }
  /** One request frame; the status of its answer. */
  async status(stream: number, service: string, method: string, payload: Uint8Array = new Uint8Array()) {
    this.write(encodeFrame(stream, 1, encodeRequest({ service, method, payload })));
    const f = await this.next();
    expect(f.streamId).toBe(stream);
    return decodeResponse(f.payload).status;
  }
  close(): void {
    this.socket.destroy();
  }
}

let agent: HostAgent;
let client: AgentClient;
let rootfs: string;
let rootfsOsRelease: string;

/** The `sleep` processes that agent `a` started (its descendants): no one else's. */
/**
 * The agent's descendants running `sleep`, once there are `n` of them (up to
 * 10 s): StartContainer returns when the container's init was told to start,
 * which may be just before it has exec'd its command.
 */
async function sleepsUnder(a: HostAgent, n = 1): Promise<Proc[]> {
  const sleeps = async () => (await descendants(a.proc.pid!)).filter((p) => p.argv[0] === 'sleep');
  for (let i = 0; i < 100 && (await sleeps()).length < n; i++) await new Promise((r) => setTimeout(r, 100));
  return sleeps();
}
let seq = 0;

/** The default spec on the cached busybox container rootfs (read-only, /tmp a tmpfs). */
function spec(args: string[], edit?: (s: Spec) => void): Spec {
  const s = defaultSpec({ args, hostname: 'ctr-host' });
  setRoot(s, rootfs, true);
  s.Mounts.push(tmpfsMount('/tmp'));
  edit?.(s);
  return s;
}

async function container(args: string[], edit?: (s: Spec) => void): Promise<GuestContainer> {
  const id = `hostctr-${++seq}`;
  await client.call(AgentService.method.createContainer, { containerId: id, execId: id, OCI: spec(args, edit) });
  return new GuestContainer(client, id);
}

/** Start, stream to the end, wait: [status, stdout, stderr]. */
async function runToEnd(c: GuestContainer, stdin?: Uint8Array): Promise<[number, string, string]> {
  await c.start();
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const status = await c.init.run({ onStdout: (b) => out.push(b), onStderr: (b) => err.push(b), ...(stdin ? { stdin } : {}) });
  return [status, Buffer.concat(out).toString(), Buffer.concat(err).toString()];
}

async function rpcStatus(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RpcError);
  return (e as RpcError).status;
}

beforeAll(async () => {
  const def = await defaultContainerRootfs();
  rootfs = def.path;
  rootfsOsRelease = def.osRelease;
  agent = await startHostAgent();
  client = (await agent.connect()).client;
  await client.call(AgentService.method.createSandbox, {
    hostname: 'sandbox-host',
    sandboxId: 'host-test',
    storages: [{ driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: `${await makeTempDir('osb-agent-storage-')}/shm`, options: ['size=1m'] }],
  });
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
});

describe('grpc.Health and the statuses of ttrpc-rust', () => {
  it('Check is SERVING, Version is the build, GetGuestDetails names the handlers', async () => {
    expect(await client.check()).toBe(SERVING_STATUS.SERVING);
    expect(await client.version()).toEqual({ grpcVersion: '0.0.1', agentVersion: (await defaultAgentBinary()).version });
    const d = await client.call(AgentService.method.getGuestDetails, { memBlockSize: true, memHotplugProbe: true });
    expect(d.agentDetails).toMatchObject({
      version: (await defaultAgentBinary()).version,
      initDaemon: false,
      deviceHandlers: [],
      storageHandlers: ['9p', 'virtio-fs', 'ephemeral', 'local'],
      supportsSeccomp: false,
    });
  });

  it("answers Kata's unimplemented methods, unknown methods and unknown services as kata-agent does", async () => {
    const raw = await Raw.open(agent.socketPath);
    expect(await raw.status(1, 'grpc.AgentService', 'UpdateInterface')).toEqual({ code: 5, message: '/grpc.AgentService/UpdateInterface is not supported' });
    expect(await raw.status(3, 'grpc.AgentService', 'GetOOMEvent')).toEqual({ code: 5, message: '/grpc.AgentService/GetOOMEvent is not supported' });
    expect(await raw.status(5, 'grpc.AgentService', 'Exec')).toEqual({ code: 12, message: 'Exec method' });
    expect(await raw.status(7, 'osbuilder.Guest', 'Exec')).toEqual({ code: 3, message: 'osbuilder.Guest service does not exist' });
    expect(await raw.status(9, 'grpc.Health', 'Watch')).toEqual({ code: 12, message: 'Watch method' });
    raw.close();
  });

  it('answers malformed and oversized frames and keeps serving the connection', async () => {
    const raw = await Raw.open(agent.socketPath);
    // Over 4 MiB: the body is skipped, the stream is answered.
    const h = Buffer.alloc(10);
    h.writeUInt32BE(TTRPC_MAX_MESSAGE + 1, 0);
    h.writeUInt32BE(1, 4);
    h.writeUInt8(1, 8);
    raw.write(Buffer.concat([h, Buffer.alloc(TTRPC_MAX_MESSAGE + 1, 0x41)]));
    let f = await raw.next();
    expect(decodeResponse(f.payload).status).toEqual({
      code: 3,
      message: `message length ${TTRPC_MAX_MESSAGE + 1} exceed maximum message size of ${TTRPC_MAX_MESSAGE}`,
    });
    // A garbage Request, then a valid one on the same connection.
    raw.write(encodeFrame(3, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    expect(await raw.status(5, 'grpc.Health', 'Check')).toEqual({ code: 0, message: '' });
    // A truncated payload of a known method: the handler fails, UNKNOWN (ttrpc-rust's request_handler).
    expect((await raw.status(7, 'grpc.AgentService', 'CreateContainer', Buffer.from([0x0a, 0x7f, 0x41]))).code).toBe(2);
    // Even stream id; a data frame outside a stream; a response frame (ignored, as ttrpc-rust does).
    raw.write(encodeFrame(8, 1, encodeRequest({ service: 'grpc.Health', method: 'Check', payload: new Uint8Array() })));
    expect(decodeResponse((await raw.next()).payload).status).toEqual({ code: 3, message: 'stream id must be odd' });
    raw.write(encodeFrame(9, 3, Buffer.from('x')));
    expect(decodeResponse((await raw.next()).payload).status).toEqual({ code: 3, message: 'Stream is no longer active' });
    raw.write(encodeFrame(11, 2, Buffer.from('x')));
    expect(await raw.status(13, 'grpc.Health', 'Check')).toEqual({ code: 0, message: '' });
    // Unknown fields are skipped; two requests in one write are both answered.
    const check = Buffer.concat([encodeRequest({ service: 'grpc.Health', method: 'Check', payload: Buffer.from([0x0a, 0x01, 0x78, 0xfa, 0x06, 0x01, 0x79]) })]);
    raw.write(Buffer.concat([encodeFrame(15, 1, check), encodeFrame(17, 1, check)]));
    f = await raw.next();
    expect([f.streamId, decodeResponse(f.payload).status.code, [...decodeResponse(f.payload).payload]]).toEqual([15, 0, [8, 1]]);
    expect((await raw.next()).streamId).toBe(17);
    // An unknown container id: Kata's code and name (WaitProcessRequest{container_id="no"}).
    expect(await raw.status(19, 'grpc.AgentService', 'WaitProcess', Buffer.from([0x0a, 0x02, 0x6e, 0x6f]))).toEqual({ code: 3, message: 'InvalidContainerId' });
    // A frame cut in the middle, then the connection drops: the agent survives.
    raw.write(encodeFrame(21, 1, check).subarray(0, 14));
    raw.close();
    const again = await agent.connect();
    expect(await again.client.check()).toBe(SERVING_STATUS.SERVING);
    again.client.close();
    expect(agent.proc.exitCode).toBe(null);
  });
});

describe('containers on the host', () => {
  it('runs a container: its own rootfs, pid 1, the sandbox hostname, exit status', async () => {
    const c = await container(['sh', '-c', 'echo pid=$$; hostname; cat /etc/os-release; grep CapEff /proc/self/status; echo oops >&2; exit 3']);
    const [status, out, err] = await runToEnd(c);
    expect(status).toBe(3);
    expect(out).toBe(`pid=1\nsandbox-host\n${rootfsOsRelease}CapEff:\t00000000a80425fb\n`);
    expect(err).toBe('oops\n');
    await c.remove();
  });

  it('8 MiB of stdout arrives complete and in order', async () => {
    const c = await container(['sh', '-c', 'i=0; while [ $i -lt 131072 ]; do printf "%063d\\n" $i; i=$((i+1)); done']);
    const [status, out] = await runToEnd(c);
    expect(status).toBe(0);
    const want = Array.from({ length: 131072 }, (_, i) => `${String(i).padStart(63, '0')}\n`).join('');
    expect(out.length).toBe(8 << 20);
    expect(createHash('sha256').update(out).digest('hex')).toBe(createHash('sha256').update(want).digest('hex'));
    await c.remove();
  });

  it('stdin round trip through cat (WriteStdin, CloseStdin), and an exec in the running container', async () => {
    const data = randomBytes(3 << 20).toString('base64');
    const c = await container(['cat']);
    const [status, out] = await runToEnd(c, Buffer.from(data));
    expect(status).toBe(0);
    expect(out === data).toBe(true);
    await c.remove();

    const d = await container(['sh', '-c', 'read x; echo "init got $x"']);
    await d.start();
    const p = await d.exec('exec-1', spec(['sh', '-c', 'echo pid=$$; tr "\\0" " " < /proc/1/cmdline; echo; exit 7']).Process!);
    const out2: Uint8Array[] = [];
    expect(await p.run({ onStdout: (b) => out2.push(b) })).toBe(7);
    expect(Buffer.concat(out2).toString()).toMatch(/^pid=[2-9]\d*\nsh -c read x; echo "init got \$x" \n$/);
    const out3: Uint8Array[] = [];
    expect(await d.init.run({ stdin: Buffer.from('hello\n'), onStdout: (b) => out3.push(b) })).toBe(0);
    expect(Buffer.concat(out3).toString()).toBe('init got hello\n');
    await d.remove();
  });

  it('WriteStdin calls sent at once land in order; past 16 in flight one is RESOURCE_EXHAUSTED; no exec once init is gone', async () => {
    const c = await container(['cat']);
    await c.start();
    const ids = { containerId: c.id, execId: c.id };
    // Nobody reads stdout yet, so cat stalls and most writes stay pending.
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.from(`${String(i).padStart(7, '0')}\n`.repeat(8192)));
    const writes = chunks.map((data) =>
      client.call(AgentService.method.writeStdin, { ...ids, data }).then(
        (r) => r.len,
        (e: unknown) => e,
      ),
    );
    const out: Uint8Array[] = [];
    const drained = c.init.drain('stdout', (b) => out.push(b));
    const results = await Promise.all(writes);
    const refused = results.filter((r) => r instanceof RpcError);
    expect(refused.length).toBeGreaterThan(0);
    expect((refused[0] as RpcError).status).toEqual({ code: 8, message: '16 WriteStdin calls are still writing to this process; wait for their answers' });
    await c.init.closeStdin();
    await drained;
    const accepted = chunks.filter((_, i) => results[i] === chunks[i]!.length);
    expect(accepted.length + refused.length).toBe(chunks.length);
    expect(Buffer.concat(out).equals(Buffer.concat(accepted))).toBe(true);
    expect(await c.init.wait()).toBe(0);
    // Init waited for (and forgotten): the container's namespaces are gone, so is ExecProcess.
    expect(await rpcStatus(c.exec('late', spec(['true']).Process!))).toEqual({ code: 13, message: "the container's init process has exited" });
    await c.remove();
  });

  it('SignalProcess SIGTERM: 143 for an exec, SIGKILL (137) for an init that does not handle it, as Kata', async () => {
    const c = await container(['sleep', '600']);
    await c.start();
    const p = await c.exec('sleeper', spec(['sleep', '600']).Process!);
    await p.signal(15);
    expect(await p.wait()).toBe(143);
    await c.init.signal(15);
    expect(await c.init.wait()).toBe(137);
    // WaitProcess forgot them: a second wait is Kata's NOT_FOUND.
    expect(await rpcStatus(c.init.wait())).toEqual({ code: 5, message: 'InvalidExecId' });
    expect(await rpcStatus(client.call(AgentService.method.waitProcess, { containerId: c.id, execId: '' }))).toEqual({
      code: 5,
      message: 'InitProcessNotFound',
    });
    expect(await rpcStatus(p.wait())).toEqual({ code: 5, message: 'InvalidExecId' });
    await c.remove();
  });

  it('two containers at once, with interleaved requests on one connection', async () => {
    const a = await container(['sh', '-c', 'read x; echo a-$x']);
    const b = await container(['sh', '-c', 'read x; echo b-$x']);
    await Promise.all([a.start(), b.start()]);
    const runs = [a.init.run({ stdin: Buffer.from('1\n') }), b.init.run({ stdin: Buffer.from('2\n') })];
    expect(await Promise.all(runs)).toEqual([0, 0]);
    await Promise.all([a.remove(), b.remove()]);
  });

  it('WaitProcess past its ttrpc deadline is DEADLINE_EXCEEDED; RemoveContainer kills and reaps', async () => {
    const c = await container(['sleep', '600']);
    await c.start();
    const sleeping = await sleepsUnder(agent);
    expect(sleeping).toHaveLength(1);
    const raw = await Raw.open(agent.socketPath);
    const { WaitProcessRequestSchema } = await import('../../runtime/gen/agent_pb.js');
    const { create, toBinary } = await import('@bufbuild/protobuf');
    raw.write(
      encodeFrame(
        1,
        1,
        encodeRequest({
          service: 'grpc.AgentService',
          method: 'WaitProcess',
          payload: toBinary(WaitProcessRequestSchema, create(WaitProcessRequestSchema, { containerId: c.id })),
          timeoutNano: 300_000_000n,
        }),
      ),
    );
    expect(decodeResponse((await raw.next()).payload).status).toEqual({ code: 4, message: 'timeout' });
    raw.close();
    await c.remove();
    expect(await rpcStatus(c.start())).toEqual({ code: 13, message: 'Invalid container id' });
    expect(await stillThere(sleeping)).toEqual([]);
  });

  it('refuses a missing rootfs, a bad id, resources it cannot apply, a terminal; errors name the problem', async () => {
    expect(
      await rpcStatus(
        client.call(AgentService.method.createContainer, { containerId: 'x1', execId: 'x1', OCI: spec(['true'], (s) => setRoot(s, '/no/such/rootfs', false)) }),
      ),
    ).toEqual({ code: 13, message: 'container rootfs /no/such/rootfs: No such file or directory' });
    expect((await rpcStatus(client.call(AgentService.method.createContainer, { containerId: '../x', execId: 'x', OCI: spec(['true']) }))).message).toMatch(
      /invalid container id/,
    );
    const limited = spec(['true']);
    limited.Linux!.Resources = { ...limited.Linux!.Resources!, Pids: { $typeName: 'grpc.LinuxPids', Limit: 10n } };
    expect((await rpcStatus(client.call(AgentService.method.createContainer, { containerId: 'x2', execId: 'x2', OCI: limited }))).message).toMatch(
      /no cgroup v2 hierarchy is mounted/,
    );
    expect((await rpcStatus(client.call(AgentService.method.createContainer, { containerId: 'x3', execId: 'x3', OCI: spec(['no-such-cmd']) }))).message).toBe(
      'exec: "no-such-cmd": executable file not found in $PATH',
    );
    expect(
      (
        await rpcStatus(
          client.call(AgentService.method.createContainer, { containerId: 'x4', execId: 'x4', OCI: spec(['true'], (s) => (s.Process!.Terminal = true)) }),
        )
      ).message,
    ).toMatch(/no terminal support/);
    // None of them left a container behind.
    expect(await rpcStatus(client.call(AgentService.method.startContainer, { containerId: 'x3' }))).toEqual({ code: 13, message: 'Invalid container id' });
  });

  it('decodes requests encoded by a second library (protobufjs) and runs the container', async () => {
    const protoDir = fileURLToPath(new URL('../../agent/proto/', import.meta.url));
    const root = new protobuf.Root();
    root.resolvePath = (_o, t) => (t.startsWith('google/') || t.startsWith('/') ? t : protoDir + t);
    root.loadSync(
      ['agent.proto', 'oci.proto'].map((f) => protoDir + f),
      { keepCase: true },
    );
    const CreateContainer = root.lookupType('grpc.CreateContainerRequest');
    const s = spec(['sh', '-c', 'echo from protobufjs; exit 4']);
    const msg = CreateContainer.fromObject({
      container_id: 'pbjs-1',
      exec_id: 'pbjs-1',
      OCI: {
        Version: s.Version,
        Process: { Args: s.Process!.Args, Env: s.Process!.Env, Cwd: '/', User: { UID: 0, GID: 0 } },
        Root: { Path: rootfs, Readonly: true },
        Hostname: 'pbjs',
        Mounts: s.Mounts.map((m) => ({ destination: m.destination, source: m.source, type: m.type, options: m.options })),
        Linux: { Namespaces: [{ Type: 'pid' }, { Type: 'mount' }, { Type: 'uts' }] },
      },
    });
    const raw = await Raw.open(agent.socketPath);
    expect(await raw.status(1, 'grpc.AgentService', 'CreateContainer', CreateContainer.encode(msg).finish())).toEqual({ code: 0, message: '' });
    raw.close();
    const c = new GuestContainer(client, 'pbjs-1');
    const [status, out] = await runToEnd(c);
    expect([status, out]).toEqual([4, 'from protobufjs\n']);
    await c.remove();
  });
});

describe('agent lifecycle on the host', () => {
  it('DestroySandbox kills what runs and stops the agent (a host process has nothing to power off)', async () => {
    const a = await startHostAgent();
    const { client: c } = await a.connect();
    await c.call(AgentService.method.createSandbox, { hostname: 'h', sandboxId: 's' });
    await c.call(AgentService.method.createContainer, { containerId: 'long-1', execId: 'long-1', OCI: spec(['sleep', '601']) });
    await c.call(AgentService.method.startContainer, { containerId: 'long-1' });
    const sleeping = await sleepsUnder(a);
    expect(sleeping).toHaveLength(1);
    await c.call(AgentService.method.destroySandbox, {});
    const r = await a.proc;
    expect(r.exitCode).toBe(0);
    expect(a.log()).toMatch(/sandbox s destroyed/);
    expect(await stillThere(sleeping)).toEqual([]);
  });

  it("CreateSandbox kernel_modules: a name modprobe would take as an option is INVALID_ARGUMENT, a missing module INTERNAL with modprobe's words", async () => {
    const a = await startHostAgent();
    const { client: c } = await a.connect();
    try {
      const bad = await rpcStatus(
        c.call(AgentService.method.createSandbox, { hostname: 'h', sandboxId: 's', kernelModules: [{ name: '-r', parameters: ['x=1'] }] }),
      );
      expect(bad).toEqual({ code: 3, message: 'kernel module name "-r" is not a module name' });
      const opt = await rpcStatus(
        c.call(AgentService.method.createSandbox, { hostname: 'h', sandboxId: 's', kernelModules: [{ name: 'loop', parameters: ['--force'] }] }),
      );
      expect(opt).toEqual({ code: 3, message: 'kernel module loop: parameter "--force" is not name=value' });
      const missing = await rpcStatus(
        c.call(AgentService.method.createSandbox, { hostname: 'h', sandboxId: 's', kernelModules: [{ name: 'osb_no_such_module', parameters: [] }] }),
      );
      expect(missing.code).toBe(13);
      expect(missing.message).toMatch(/^load kernel module osb_no_such_module: modprobe failed: modprobe: FATAL: Module osb_no_such_module not found/);
      // Nothing was created: the sandbox can still be made.
      await c.call(AgentService.method.createSandbox, { hostname: 'h', sandboxId: 's' });
    } finally {
      c.close();
      await a.stop();
    }
  });

  it('gives up when the host closes the channel and does not come back (--hangup-timeout)', async () => {
    const a = await startHostAgent(['--hangup-timeout', '1']);
    const { client: c } = await a.connect();
    expect(await c.check()).toBe(SERVING_STATUS.SERVING);
    c.close();
    const r = await a.proc;
    expect(r.exitCode).toBe(0);
    expect(a.log()).toMatch(/did not come back within 1s/);
  });

  it('stops on SIGTERM with a container running: kills it, exits 0', async () => {
    const a = await startHostAgent();
    const { client: c } = await a.connect();
    await c.call(AgentService.method.createContainer, { containerId: 'long-2', execId: 'long-2', OCI: spec(['sleep', '602']) });
    await c.call(AgentService.method.startContainer, { containerId: 'long-2' });
    const wait = c.call(AgentService.method.waitProcess, { containerId: 'long-2' }).catch(() => undefined);
    const sleeping = await sleepsUnder(a);
    expect(sleeping).toHaveLength(1);
    process.kill(a.proc.pid!, 'SIGTERM');
    const r = await a.proc;
    expect(r.exitCode).toBe(0);
    expect(a.log()).toMatch(/stopped by signal 15/);
    await wait;
    expect(await stillThere(sleeping)).toEqual([]);
  });

  it('rejects bad arguments', async () => {
    const bin = (await defaultAgentBinary()).path;
    const r = await execa(bin, ['--listen', 'tcp:1'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/usage: kata-agent/);
    const v = await execa(bin, ['--version'], { reject: false });
    expect(v.stdout).toBe(`kata-agent (osbuilder) ${(await defaultAgentBinary()).version}`);
  });
});
