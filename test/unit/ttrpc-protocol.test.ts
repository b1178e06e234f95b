/**
 * ttrpc framing and the protobuf messages, against golden bytes written out by
 * hand from the wire format, and cross-checked with protobufjs reading the
 * documented .proto files in agent/proto (so the docs and the codec agree).
 */
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { ProtoWriter, decodeFields, ProtoDecodeError } from '../../runtime/protobuf.js';
import { FrameDecoder, decodeHeader, decodeRequest, decodeResponse, encodeFrame, encodeRequest, encodeResponse, TTRPC_MAX_MESSAGE } from '../../runtime/ttrpc.js';
import {
  decodeExecResponse,
  decodeHealthCheckResponse,
  decodeVersionCheckResponse,
  encodeCheckRequest,
  encodeExecRequest,
} from '../../runtime/agent-client.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const protoDir = fileURLToPath(new URL('../../agent/proto/', import.meta.url));
const root = protobuf.loadSync(['ttrpc.proto', 'health.proto', 'osbuilder-guest.proto'].map((f) => protoDir + f));

describe('ttrpc frame header', () => {
  it('is length u32 BE, stream id u32 BE, type u8, flags u8', () => {
    const f = encodeFrame(1, 1, Buffer.from('abc'));
    expect(f).toEqual(hex('00000003 00000001 01 00 616263'));
    expect(decodeHeader(f)).toEqual({ length: 3, streamId: 1, type: 1, flags: 0 });
    expect(encodeFrame(0x01020304, 2, Buffer.alloc(0), 4)).toEqual(hex('00000000 01020304 02 04'));
  });

  it('refuses to send a payload over 4 MiB', () => {
    expect(() => encodeFrame(1, 1, Buffer.alloc(TTRPC_MAX_MESSAGE + 1))).toThrow(/4 MiB/);
    expect(encodeFrame(1, 1, Buffer.alloc(TTRPC_MAX_MESSAGE)).length).toBe(TTRPC_MAX_MESSAGE + 10);
  });

  it('reassembles frames split anywhere and several frames in one chunk', () => {
    const a = encodeFrame(1, 2, Buffer.from('hello'));
    const b = encodeFrame(3, 2, Buffer.alloc(0));
    const c = encodeFrame(5, 2, Buffer.from('x'));
    const all = Buffer.concat([a, b, c]);
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
      expect(frames.map((f) => [f.streamId, f.payload.toString()])).toEqual([
        [1, 'hello'],
        [3, ''],
        [5, 'x'],
      ]);
    }
  });

  it('rejects an incoming frame that announces more than 4 MiB', () => {
    const h = hex('00400001 00000001 02 00');
    expect(() => new FrameDecoder().push(h)).toThrow(/over the 4 MiB limit/);
  });
});

describe('ttrpc Request/Response protobuf', () => {
  it('encodes grpc.Health/Check exactly', () => {
    const golden = hex('0a0b 677270632e4865616c7468 1205 436865636b');
    expect(encodeRequest({ service: 'grpc.Health', method: 'Check', payload: Buffer.alloc(0) })).toEqual(golden);
    expect(encodeFrame(1, 1, golden)).toEqual(Buffer.concat([hex('00000014 00000001 01 00'), golden]));
    const viaProtobufjs = root.lookupType('ttrpc.Request').encode({ service: 'grpc.Health', method: 'Check' }).finish();
    expect(Buffer.from(viaProtobufjs)).toEqual(golden);
  });

  it('encodes payload, timeout_nano and metadata in field order 3, 4, 5', () => {
    const r = encodeRequest({ service: 's', method: 'm', payload: hex('0801'), timeoutNano: 5_000_000_000n, metadata: [{ key: 'k', value: 'v' }] });
    expect(r).toEqual(hex('0a01 73 1201 6d 1a02 0801 20 80e497d012 2a06 0a016b 120176'));
    const pj = root.lookupType('ttrpc.Request').encode({ service: 's', method: 'm', payload: hex('0801'), timeoutNano: 5_000_000_000, metadata: [{ key: 'k', value: 'v' }] }).finish();
    expect(Buffer.from(pj)).toEqual(r);
    expect(decodeRequest(r)).toEqual({ service: 's', method: 'm', payload: hex('0801'), timeoutNano: 5_000_000_000n, metadata: [{ key: 'k', value: 'v' }] });
  });

  it('writes an empty Status on success, as ttrpc does, and reads both shapes', () => {
    const ok = encodeResponse({ status: { code: 0, message: '' }, payload: hex('0801') });
    expect(ok).toEqual(hex('0a00 1202 0801'));
    expect(decodeResponse(ok)).toEqual({ status: { code: 0, message: '' }, payload: hex('0801') });
    // A response without any status field is OK too.
    expect(decodeResponse(hex('1202 0801')).status.code).toBe(0);
    const err = encodeResponse({ status: { code: 8, message: 'x' }, payload: Buffer.alloc(0) });
    expect(err).toEqual(hex('0a05 0808 120178'));
    const pj = root.lookupType('ttrpc.Response').decode(err) as unknown as { status: { code: number; message: string } };
    expect(pj.status).toMatchObject({ code: 8, message: 'x' });
  });
});

describe('grpc.Health messages (Kata health.proto)', () => {
  it('CheckRequest and the responses', () => {
    expect(encodeCheckRequest()).toEqual(Buffer.alloc(0));
    expect(encodeCheckRequest({ service: 'a', optionVal: 'b' })).toEqual(hex('0a0161 120162'));
    expect(decodeHealthCheckResponse(hex('0801'))).toEqual({ status: 1 });
    expect(decodeHealthCheckResponse(Buffer.alloc(0))).toEqual({ status: 0 });
    const v = root.lookupType('grpc.VersionCheckResponse').encode({ grpcVersion: '0.0.1', agentVersion: '3.2.0' }).finish();
    expect(Buffer.from(v)).toEqual(hex('0a05 302e302e31 1205 332e322e30'));
    expect(decodeVersionCheckResponse(Buffer.from(v))).toEqual({ grpcVersion: '0.0.1', agentVersion: '3.2.0' });
    const hc = root.lookupType('grpc.HealthCheckResponse');
    expect(Buffer.from(hc.encode({ status: 1 }).finish())).toEqual(hex('0801'));
  });
});

describe('osbuilder.Guest messages', () => {
  it('ExecRequest', () => {
    const r = encodeExecRequest({ argv: ['sh', '-c', 'echo hi'], env: ['A=1'], cwd: '/tmp', timeoutMs: 1500, stdin: Buffer.from('in') });
    expect(r).toEqual(hex('0a02 7368 0a02 2d63 0a07 6563686f206869 1203 413d31 1a04 2f746d70 20dc0b 2a02 696e'));
    const pj = root.lookupType('osbuilder.ExecRequest').encode({ argv: ['sh', '-c', 'echo hi'], env: ['A=1'], cwd: '/tmp', timeoutMs: 1500, stdin: Buffer.from('in') }).finish();
    expect(Buffer.from(pj)).toEqual(r);
    expect(encodeExecRequest({ argv: ['true'] })).toEqual(hex('0a04 74727565'));
  });

  it('ExecResponse, including a negative int32 and every flag', () => {
    const golden = hex('08ffffffffffffffffff01 1203 6f7574 1a03 657272 2001 2809 3001');
    expect(decodeExecResponse(golden)).toEqual({ exitCode: -1, stdout: Buffer.from('out'), stderr: Buffer.from('err'), timedOut: true, signal: 9, truncated: true });
    const pj = root.lookupType('osbuilder.ExecResponse').encode({ exitCode: -1, stdout: Buffer.from('out'), stderr: Buffer.from('err'), timedOut: true, signal: 9, truncated: true }).finish();
    expect(Buffer.from(pj)).toEqual(golden);
    expect(decodeExecResponse(Buffer.alloc(0))).toEqual({ exitCode: 0, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), timedOut: false, signal: 0, truncated: false });
  });
});

describe('protobuf codec', () => {
  it('varints', () => {
    expect(ProtoWriter.varint(0)).toEqual(hex('00'));
    expect(ProtoWriter.varint(127)).toEqual(hex('7f'));
    expect(ProtoWriter.varint(128)).toEqual(hex('8001'));
    expect(ProtoWriter.varint(300)).toEqual(hex('ac02'));
    expect(ProtoWriter.varint(-1)).toEqual(hex('ffffffffffffffffff01'));
    expect(ProtoWriter.varint(2n ** 64n - 1n)).toEqual(hex('ffffffffffffffffff01'));
  });

  it('skips unknown fields of every wire type', () => {
    const b = hex('0801 11 0102030405060708 1d 01020304 2201ff');
    expect(decodeFields(b).map((f) => [f.field, f.wire])).toEqual([
      [1, 0],
      [2, 1],
      [3, 5],
      [4, 2],
    ]);
  });

  it('rejects malformed input', () => {
    expect(() => decodeFields(hex('0a05 6162'))).toThrow(ProtoDecodeError); // runs past the end
    expect(() => decodeFields(hex('08'))).toThrow(ProtoDecodeError); // truncated varint
    expect(() => decodeFields(hex('08ffffffffffffffffffff01'))).toThrow(ProtoDecodeError); // 11-byte varint
    expect(() => decodeFields(hex('0b'))).toThrow(ProtoDecodeError); // group (wire 3)
    expect(() => decodeFields(hex('00'))).toThrow(ProtoDecodeError); // field 0
    expect(() => decodeFields(hex('11 0102'))).toThrow(ProtoDecodeError); // truncated fixed64
  });
});
