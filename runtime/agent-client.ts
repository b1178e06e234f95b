/**
 * The agent's services over ttrpc: grpc.Health (Kata's health.proto) and
 * osbuilder.Guest (agent/proto/osbuilder-guest.proto).
 */
import { asInt32, decodeFields, ProtoWriter } from './protobuf.js';
import type { TtrpcClient } from './ttrpc.js';

export const HEALTH_SERVICE = 'grpc.Health';
export const GUEST_SERVICE = 'osbuilder.Guest';

/** HealthCheckResponse.ServingStatus */
export const SERVING_STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as const;

export function encodeCheckRequest(r: { service?: string; optionVal?: string } = {}): Buffer {
  return new ProtoWriter().string(1, r.service).string(2, r.optionVal).finish();
}

export function decodeHealthCheckResponse(b: Buffer): { status: number } {
  let status = 0;
  for (const f of decodeFields(b)) if (f.field === 1 && f.wire === 0) status = Number(f.varint);
  return { status };
}

export interface VersionInfo {
  grpcVersion: string;
  agentVersion: string;
}

export function decodeVersionCheckResponse(b: Buffer): VersionInfo {
  const v: VersionInfo = { grpcVersion: '', agentVersion: '' };
  for (const f of decodeFields(b)) {
    if (f.field === 1 && f.wire === 2) v.grpcVersion = f.bytes.toString('utf8');
    if (f.field === 2 && f.wire === 2) v.agentVersion = f.bytes.toString('utf8');
  }
  return v;
}

export interface ExecRequest {
  argv: string[];
  env?: string[];
  cwd?: string;
  /** 0/undefined: no limit. */
  timeoutMs?: number;
  stdin?: Buffer;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  timedOut: boolean;
  signal: number;
  truncated: boolean;
}

export function encodeExecRequest(r: ExecRequest): Buffer {
  return new ProtoWriter()
    .strings(1, r.argv)
    .strings(2, r.env)
    .string(3, r.cwd)
    .uint(4, r.timeoutMs ?? 0)
    .bytes(5, r.stdin)
    .finish();
}

export function decodeExecResponse(b: Buffer): ExecResult {
  const r: ExecResult = { exitCode: 0, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), timedOut: false, signal: 0, truncated: false };
  for (const f of decodeFields(b)) {
    if (f.field === 1 && f.wire === 0) r.exitCode = asInt32(f.varint);
    else if (f.field === 2 && f.wire === 2) r.stdout = f.bytes;
    else if (f.field === 3 && f.wire === 2) r.stderr = f.bytes;
    else if (f.field === 4 && f.wire === 0) r.timedOut = f.varint !== 0n;
    else if (f.field === 5 && f.wire === 0) r.signal = asInt32(f.varint);
    else if (f.field === 6 && f.wire === 0) r.truncated = f.varint !== 0n;
  }
  return r;
}

/** Typed calls on top of a ttrpc connection. */
export class AgentClient {
  constructor(readonly ttrpc: TtrpcClient) {}

  async check(timeoutMs?: number): Promise<number> {
    const b = await this.ttrpc.call(HEALTH_SERVICE, 'Check', encodeCheckRequest(), timeoutMs !== undefined ? { timeoutMs } : {});
    return decodeHealthCheckResponse(b).status;
  }

  async version(timeoutMs?: number): Promise<VersionInfo> {
    return decodeVersionCheckResponse(await this.ttrpc.call(HEALTH_SERVICE, 'Version', encodeCheckRequest(), timeoutMs !== undefined ? { timeoutMs } : {}));
  }

  /** Runs a command; the call waits as long as the command's own timeout (plus a margin) allows. */
  async exec(req: ExecRequest, opts: { waitMs?: number } = {}): Promise<ExecResult> {
    const b = await this.ttrpc.call(GUEST_SERVICE, 'Exec', encodeExecRequest(req), opts.waitMs !== undefined ? { timeoutMs: opts.waitMs } : {});
    return decodeExecResponse(b);
  }

  async shutdown(timeoutMs?: number): Promise<void> {
    await this.ttrpc.call(GUEST_SERVICE, 'Shutdown', Buffer.alloc(0), timeoutMs !== undefined ? { timeoutMs } : {});
  }

  close(): void {
    this.ttrpc.close();
  }
}
