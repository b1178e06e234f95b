/**
 * ttrpc, as containerd/ttrpc and Kata use it: 10-byte frame header (length
 * u32 BE, stream id u32 BE, type u8 1=request 2=response, flags u8), payload
 * at most 4 MiB, carrying protobuf Request/Response (agent/proto/ttrpc.proto,
 * code generated into runtime/gen).
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { OsbuilderError } from '../core/errors.js';
import { RequestSchema, ResponseSchema } from './gen/ttrpc_pb.js';

export const TTRPC_HEADER_LEN = 10;
export const TTRPC_MAX_MESSAGE = 4 << 20;
export const MESSAGE_TYPE_REQUEST = 1;
export const MESSAGE_TYPE_RESPONSE = 2;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

export interface Frame extends FrameHeader {
  payload: Buffer;
}

export function encodeFrame(streamId: number, type: number, payload: Buffer, flags = 0): Buffer {
  if (payload.length > TTRPC_MAX_MESSAGE) {
    throw new OsbuilderError('TOO_LARGE', `ttrpc message of ${payload.length} bytes exceeds the 4 MiB limit`, 'send less data per call');
  }
  const h = Buffer.alloc(TTRPC_HEADER_LEN);
  h.writeUInt32BE(payload.length, 0);
  h.writeUInt32BE(streamId >>> 0, 4);
  h.writeUInt8(type, 8);
  h.writeUInt8(flags, 9);
  return Buffer.concat([h, payload]);
}

export function decodeHeader(b: Buffer): FrameHeader {
  return { length: b.readUInt32BE(0), streamId: b.readUInt32BE(4), type: b.readUInt8(8), flags: b.readUInt8(9) };
}

/** fromBinary, with the decoder's errors (premature EOF, illegal tag…) as AGENT_ERROR naming `what`. */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, b: Uint8Array, what: string): MessageShape<Desc> {
  try {
    return fromBinary(schema, b);
  } catch (err) {
    throw new OsbuilderError('AGENT_ERROR', `malformed ${what} from the agent: ${(err as Error).message}`, 'the agent is misbehaving: check its version');
  }
}

/** Incremental frame parser: push bytes, get whole frames. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    while (this.buf.length >= TTRPC_HEADER_LEN) {
      const h = decodeHeader(this.buf);
      if (h.length > TTRPC_MAX_MESSAGE) {
        throw new OsbuilderError(
          'AGENT_ERROR',
          `agent sent a ${h.length}-byte ttrpc message, over the 4 MiB limit`,
          'the agent is misbehaving: check its version',
        );
      }
      if (this.buf.length < TTRPC_HEADER_LEN + h.length) break;
      frames.push({ ...h, payload: this.buf.subarray(TTRPC_HEADER_LEN, TTRPC_HEADER_LEN + h.length) });
      this.buf = this.buf.subarray(TTRPC_HEADER_LEN + h.length);
    }
    return frames;
  }
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano?: bigint;
  metadata?: Array<{ key: string; value: string }>;
}

export function encodeRequest(r: TtrpcRequest): Buffer {
  return Buffer.from(
    toBinary(
      RequestSchema,
      create(RequestSchema, { service: r.service, method: r.method, payload: r.payload, timeoutNano: r.timeoutNano ?? 0n, metadata: r.metadata ?? [] }),
    ),
  );
}

export interface RpcStatus {
  code: number;
  message: string;
}

export interface TtrpcResponse {
  status: RpcStatus;
  payload: Uint8Array;
}

/** Decodes a ttrpc Response; malformed bytes are AGENT_ERROR. */
export function decodeResponse(b: Uint8Array): TtrpcResponse {
  const r = decodeMessage(ResponseSchema, b, 'ttrpc response');
  return { status: { code: r.status?.code ?? 0, message: r.status?.message ?? '' }, payload: r.payload };
}

/** google.rpc.Code names, for messages. */
export const RPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

const LOST_HINT = 'see the guest console log (--console-log) for why the agent stopped';

/** A non-OK status from the agent. */
export class RpcError extends OsbuilderError {
  constructor(
    readonly rpc: string,
    readonly status: RpcStatus,
  ) {
    super(
      'AGENT_ERROR',
      `${rpc} failed: ${RPC_CODES[status.code] ?? `code ${status.code}`}: ${status.message}`,
      status.code === 5 && /is not supported$/.test(status.message)
        ? "the guest's agent does not implement this method of Kata's agent API"
        : "see the guest console log (--console-log) for the agent's messages",
    );
  }
}

interface Pending {
  rpc: string;
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/** A ttrpc client over any byte stream (unix socket, the vsock relay's stdio). */
export class TtrpcClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private decoder = new FrameDecoder();
  private closedError: Error | undefined;

  constructor(
    private readonly readable: NodeJS.ReadableStream,
    private readonly writable: NodeJS.WritableStream,
    private readonly onClose?: () => void,
  ) {
    readable.on('data', (chunk: Buffer) => this.onData(chunk));
    const closed = (err?: Error) => this.fail(err ?? new OsbuilderError('AGENT_ERROR', 'the agent connection closed', LOST_HINT));
    readable.on('end', () => closed());
    readable.on('close', () => closed());
    readable.on('error', (e: Error) => closed(new OsbuilderError('AGENT_ERROR', `agent connection: ${e.message}`, LOST_HINT)));
    writable.on('error', (e: Error) => closed(new OsbuilderError('AGENT_ERROR', `agent connection: ${e.message}`, LOST_HINT)));
  }

  static fromDuplex(stream: Duplex, onClose?: () => void): TtrpcClient {
    return new TtrpcClient(stream, stream, onClose);
  }

  /** Connects to a unix socket once (no retry): rejects on ENOENT/ECONNREFUSED. */
  static connectUnix(path: string): Promise<{ client: TtrpcClient; socket: Socket }> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve({ client: TtrpcClient.fromDuplex(socket, () => socket.destroy()), socket });
      });
      socket.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const f of frames) {
      const p = this.pending.get(f.streamId);
      if (!p || f.type !== MESSAGE_TYPE_RESPONSE) continue; // late answer to a timed-out call
      this.pending.delete(f.streamId);
      if (p.timer) clearTimeout(p.timer);
      let resp: TtrpcResponse;
      try {
        resp = decodeResponse(f.payload);
      } catch (err) {
        const e = err as OsbuilderError;
        p.reject(new OsbuilderError(e.code, `${p.rpc}: ${e.message}`, e.hint));
        continue;
      }
      if (resp.status.code !== 0) p.reject(new RpcError(p.rpc, resp.status));
      else p.resolve(resp.payload);
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.onClose?.();
  }

  /** One unary call. `timeoutMs` bounds the wait here; `timeoutNano` is sent to the agent. */
  call(service: string, method: string, payload: Uint8Array, opts: { timeoutMs?: number; timeoutNano?: bigint } = {}): Promise<Uint8Array> {
    const request = encodeRequest({ service, method, payload, ...(opts.timeoutNano ? { timeoutNano: opts.timeoutNano } : {}) });
    return this.send(`${service}/${method}`, request, opts.timeoutMs);
  }

  /** Sends an encoded ttrpc Request (any bytes) on the next stream and waits for its answer. */
  send(rpc: string, request: Uint8Array, timeoutMs?: number): Promise<Uint8Array> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (request.length > TTRPC_MAX_MESSAGE)
      return Promise.reject(
        new OsbuilderError('TOO_LARGE', `${rpc}: a request of ${request.length} bytes exceeds ttrpc's 4 MiB limit`, 'send less data per call'),
      );
    const id = this.nextId;
    this.nextId += 2;
    const frame = encodeFrame(id, MESSAGE_TYPE_REQUEST, Buffer.from(request));
    return new Promise<Uint8Array>((resolve, reject) => {
      const p: Pending = { rpc, resolve, reject };
      if (timeoutMs !== undefined) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            new OsbuilderError('BOOT_TIMEOUT', `${rpc}: no answer from the agent within ${timeoutMs} ms`, 'raise --timeout, or check the guest console log'),
          );
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.writable.write(frame);
    });
  }

  close(): void {
    this.fail(new OsbuilderError('AGENT_ERROR', 'the agent connection was closed', 'osbuilder closed it: no call can be made after close()'));
  }
}
