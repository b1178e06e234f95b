/**
 * osbuilder's agent as a host process on a unix socket: the real binary, the
 * real ttrpc client. Protocol, Exec semantics, malformed input, shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { execa } from 'execa';
import { startHostAgent, type HostAgent } from '../support/agent.js';
import { defaultAgentBinary } from '../../agent/index.js';
import { SERVING_STATUS, encodeCheckRequest, encodeExecRequest } from '../../runtime/agent-client.js';
import { FrameDecoder, decodeResponse, encodeFrame, encodeRequest, TTRPC_MAX_MESSAGE, type Frame } from '../../runtime/ttrpc.js';
import { ProtoWriter } from '../../runtime/protobuf.js';

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
  close(): void {
    this.socket.destroy();
  }
}

const req = (service: string, method: string, payload = Buffer.alloc(0)) => encodeRequest({ service, method, payload });

describe('agent on the host (--listen unix:)', () => {
  let agent: HostAgent;
  beforeAll(async () => {
    agent = await startHostAgent();
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('answers grpc.Health/Check with SERVING and Version with its build version', async () => {
    const { client } = await agent.connect();
    expect(await client.check()).toBe(SERVING_STATUS.SERVING);
    const v = await client.version();
    expect(v.grpcVersion).toBe('0.0.1');
    expect(v.agentVersion).toBe((await defaultAgentBinary()).version);
    client.close();
  });

  it('runs commands: exit code, stdout and stderr apart, PATH lookup, default env, env override, cwd, stdin', async () => {
    const { client } = await agent.connect();
    const r = await client.exec({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(r.exitCode).toBe(3);
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r.timedOut).toBe(false);

    const env = await client.exec({ argv: ['env'] });
    const vars = env.stdout.toString().split('\n');
    expect(vars).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(vars).toContain('HOME=/root');
    expect(vars.filter((l) => l.startsWith('PATH='))).toHaveLength(1);

    const over = await client.exec({ argv: ['sh', '-c', 'echo "$FOO:$HOME"; pwd'], env: ['FOO=bar', 'HOME=/nowhere'], cwd: '/usr' });
    expect(over.stdout.toString()).toBe('bar:/nowhere\n/usr\n');

    const cat = await client.exec({ argv: ['cat'], stdin: Buffer.from('hello from stdin') });
    expect(cat.stdout.toString()).toBe('hello from stdin');
    client.close();
  });

  it('reports a missing command as 127 and a bad cwd as an error on stderr', async () => {
    const { client } = await agent.connect();
    const r = await client.exec({ argv: ['no-such-command-osb'] });
    expect(r.exitCode).toBe(127);
    expect(r.stderr.toString()).toMatch(/cannot run 'no-such-command-osb': No such file or directory/);
    const d = await client.exec({ argv: ['true'], cwd: '/no/such/dir' });
    expect(d.exitCode).not.toBe(0);
    expect(d.stderr.toString()).toMatch(/cannot change to directory '\/no\/such\/dir'/);
    client.close();
  });

  it('reports death by signal as 128+N', async () => {
    const { client } = await agent.connect();
    const r = await client.exec({ argv: ['sh', '-c', 'kill -TERM $$'] });
    expect(r.signal).toBe(15);
    expect(r.exitCode).toBe(143);
    client.close();
  });

  it('returns large output intact and caps huge output without blocking the command', async () => {
    const { client } = await agent.connect();
    const r = await client.exec({ argv: ['seq', '1', '300000'] });
    const want = Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join('');
    expect(r.stdout.length).toBe(want.length);
    expect(r.stdout.toString() === want).toBe(true);
    expect(r.truncated).toBe(false);

    const huge = await client.exec({ argv: ['head', '-c', '12000000', '/dev/zero'] });
    expect(huge.exitCode).toBe(0);
    expect(huge.truncated).toBe(true);
    expect(huge.stdout.length).toBe(3 << 20);
    expect(await client.check()).toBe(SERVING_STATUS.SERVING);
    client.close();
  });

  it('kills a command (and its process group) at its timeout', async () => {
    const { client } = await agent.connect();
    const r = await client.exec({ argv: ['sh', '-c', 'sleep 600 & sleep 600; echo never'], timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(137);
    expect(r.stdout.toString()).toBe('');
    // The background sleep of the group is gone too.
    const ps = await execa('pgrep', ['-f', '^sleep 600$'], { reject: false });
    expect(ps.stdout.trim()).toBe('');
    client.close();
  });

  it('answers malformed and oversized frames with an error status and keeps serving', async () => {
    const raw = await Raw.open(agent.socketPath);
    // Oversized: the header says 4 MiB + 1; the payload is skipped, the stream gets RESOURCE_EXHAUSTED.
    const big = Buffer.alloc(TTRPC_MAX_MESSAGE + 1, 0x41);
    const h = Buffer.alloc(10);
    h.writeUInt32BE(big.length, 0);
    h.writeUInt32BE(1, 4);
    h.writeUInt8(1, 8);
    raw.write(Buffer.concat([h, big]));
    let f = await raw.next();
    expect(f.streamId).toBe(1);
    expect(f.type).toBe(2);
    expect(decodeResponse(f.payload).status).toEqual({ code: 8, message: `message length ${TTRPC_MAX_MESSAGE + 1} exceed maximum message size of ${TTRPC_MAX_MESSAGE}` });

    // Garbage protobuf.
    raw.write(encodeFrame(3, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
    f = await raw.next();
    expect(f.streamId).toBe(3);
    expect(decodeResponse(f.payload).status.code).toBe(3);
    // A length-delimited field longer than the message.
    raw.write(encodeFrame(5, 1, Buffer.from([0x0a, 0x7f, 0x41])));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    // Even stream id.
    raw.write(encodeFrame(6, 1, req('grpc.Health', 'Check')));
    f = await raw.next();
    expect(f.streamId).toBe(6);
    expect(decodeResponse(f.payload).status).toEqual({ code: 3, message: 'StreamID must be odd for client initiated streams' });
    // Wrong message type.
    raw.write(encodeFrame(7, 2, req('grpc.Health', 'Check')));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    // Unknown service and method.
    raw.write(encodeFrame(9, 1, req('grpc.Nope', 'Check')));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(12);
    raw.write(encodeFrame(11, 1, req('grpc.Health', 'Nope')));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(12);
    // A request without service/method.
    raw.write(encodeFrame(13, 1, Buffer.alloc(0)));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    // ExecRequest: argv with the wrong wire type; empty argv; a NUL inside an argument.
    raw.write(encodeFrame(15, 1, req('osbuilder.Guest', 'Exec', Buffer.from([0x08, 0x01]))));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    raw.write(encodeFrame(17, 1, req('osbuilder.Guest', 'Exec', encodeExecRequest({ argv: [] }))));
    expect(decodeResponse((await raw.next()).payload).status).toEqual({ code: 3, message: 'ExecRequest.argv is empty' });
    raw.write(encodeFrame(19, 1, req('osbuilder.Guest', 'Exec', encodeExecRequest({ argv: ['echo', 'a\0b'] }))));
    expect(decodeResponse((await raw.next()).payload).status.code).toBe(3);
    // Unknown fields are skipped (forward compatibility).
    raw.write(encodeFrame(21, 1, Buffer.concat([req('grpc.Health', 'Check', encodeCheckRequest({ service: 'x' })), new ProtoWriter().string(99, 'future').finish()])));
    f = await raw.next();
    expect(decodeResponse(f.payload)).toEqual({ status: { code: 0, message: '' }, payload: Buffer.from([0x08, 0x01]) });
    // Two requests in one write, both answered in order.
    raw.write(Buffer.concat([encodeFrame(23, 1, req('grpc.Health', 'Check')), encodeFrame(25, 1, req('grpc.Health', 'Check'))]));
    expect((await raw.next()).streamId).toBe(23);
    expect((await raw.next()).streamId).toBe(25);
    // A frame cut in the middle, then the connection drops: the agent survives.
    raw.write(encodeFrame(27, 1, req('grpc.Health', 'Check')).subarray(0, 14));
    raw.close();

    const { client } = await agent.connect();
    expect(await client.check()).toBe(SERVING_STATUS.SERVING);
    client.close();
    expect(agent.proc.exitCode).toBe(null);
  });

  it('serves several connections', async () => {
    const a = await agent.connect();
    const b = await agent.connect();
    const [x, y] = await Promise.all([a.client.exec({ argv: ['echo', 'a'] }), b.client.exec({ argv: ['echo', 'b'] })]);
    expect(x.stdout.toString()).toBe('a\n');
    expect(y.stdout.toString()).toBe('b\n');
    a.client.close();
    b.client.close();
  });
});

describe('agent lifecycle on the host', () => {
  it('exits on Shutdown (a host process has nothing to power off)', async () => {
    const agent = await startHostAgent();
    const { client } = await agent.connect();
    await client.shutdown();
    const r = await agent.proc;
    expect(r.exitCode).toBe(0);
    expect(agent.log()).toMatch(/shutting down/);
  });

  it('gives up when the host closes the channel and does not come back (--hangup-timeout)', async () => {
    const agent = await startHostAgent(['--hangup-timeout', '1']);
    const { client } = await agent.connect();
    expect(await client.check()).toBe(SERVING_STATUS.SERVING);
    client.close();
    const r = await agent.proc;
    expect(r.exitCode).toBe(0);
    expect(agent.log()).toMatch(/did not come back within 1s/);
  });

  it('stops on SIGTERM while an Exec is running: kills the command, answers the Exec, exits', async () => {
    const agent = await startHostAgent(['--debug']);
    // Readiness from the agent's own debug line, logged right after the fork: from
    // then on the agent is inside the Exec, and the signal is read there.
    const started = new Promise<number>((resolve, reject) => {
      const seen = () => {
        const m = /debug: exec sleep: pid (\d+)/.exec(agent.log());
        if (m) resolve(Number(m[1]));
      };
      agent.proc.stderr!.on('data', seen);
      seen();
      void agent.proc.then(() => reject(new Error(`agent exited before running the command:\n${agent.log()}`)));
    });
    const { client } = await agent.connect();
    const exec = client.exec({ argv: ['sleep', '600'] });
    exec.catch(() => {}); // awaited below; keep an early rejection from going unhandled
    const pid = await started;
    const alive = (p: number) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      // A plain SIGTERM, as systemctl stop sends (execa's kill() would SIGKILL after 5 s).
      process.kill(agent.proc.pid!, 'SIGTERM');
      // Generous deadline: the agent must not wait for the 600 s command.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 20_000)));
      const r = await Promise.race([agent.proc, deadline]).finally(() => clearTimeout(timer));
      expect(r, `agent still running after SIGTERM:\n${agent.log()}`).not.toBe('hung');
      expect(r === 'hung' ? undefined : r.exitCode).toBe(0);
      expect(agent.log()).toMatch(/stopped by signal 15/);
      // The connection was alive: the Exec got its answer before the agent exited.
      const res = await exec;
      expect(res.signal).toBe(9);
      expect(res.exitCode).toBe(137);
      expect(res.timedOut).toBe(false);
      expect(res.stderr.toString()).toMatch(/kata-agent: stopped by signal 15/);
      // The command was killed (and reaped), not left behind.
      expect(alive(pid)).toBe(false);
    } finally {
      client.close();
      if (agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
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
