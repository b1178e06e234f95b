/**
 * The agent protocol, checked three ways: agent/proto against the facts taken
 * from Kata's own .proto files (test/fixtures/kata-protocol.json: every method
 * of grpc.AgentService and grpc.Health in order, with Kata's request and
 * result types, and every field number of the messages we declare); every
 * message type encoded by our generated code (protobuf-es) and decoded,
 * re-encoded and decoded again by a second library (protobufjs reading
 * agent/proto); and ttrpc's frame header and envelope against golden bytes.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { create, equals, fromBinary, ScalarType, toBinary, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { file_agent, AgentService } from '../../runtime/gen/agent_pb.js';
import { file_health, Health } from '../../runtime/gen/health_pb.js';
import { file_oci } from '../../runtime/gen/oci_pb.js';
import { file_ttrpc, RequestSchema } from '../../runtime/gen/ttrpc_pb.js';
import { file_types } from '../../runtime/gen/types_pb.js';
import { FrameDecoder, TtrpcClient, decodeHeader, decodeResponse, encodeFrame, encodeRequest, TTRPC_MAX_MESSAGE } from '../../runtime/ttrpc.js';
import { AgentClient } from '../../runtime/agent-client.js';

const kata = JSON.parse(readFileSync(new URL('../fixtures/kata-protocol.json', import.meta.url), 'utf8')) as {
  services: Record<string, string[]>;
  messages: Record<string, Record<string, string>>;
};
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const kataFiles = [file_agent, file_health, file_oci, file_types];
const allMessages: DescMessage[] = [...kataFiles, file_ttrpc].flatMap((f) => {
  const out: DescMessage[] = [];
  const walk = (ms: DescMessage[]) => ms.forEach((m) => (out.push(m), walk(m.nestedMessages)));
  walk(f.messages);
  return out;
});

function scalarName(t: ScalarType): string {
  return ScalarType[t]!.toLowerCase();
}

/** A field as Kata's fixture writes it: "repeated string = 2", "map<string,string> = 7". */
function describeField(f: DescField): string {
  const name = (x: DescField) =>
    x.fieldKind === 'scalar' ? scalarName(x.scalar) : x.fieldKind === 'enum' ? x.enum.name : x.fieldKind === 'message' ? x.message.name : '';
  if (f.fieldKind === 'list')
    return `repeated ${f.listKind === 'scalar' ? scalarName(f.scalar) : f.listKind === 'enum' ? f.enum.name : f.message.name} = ${f.number}`;
  if (f.fieldKind === 'map')
    return `map<${scalarName(f.mapKey)},${f.mapKind === 'scalar' ? scalarName(f.scalar) : f.mapKind === 'enum' ? f.enum.name : f.message.name}> = ${f.number}`;
  return `${name(f)} = ${f.number}`;
}

describe("agent/proto against Kata's protocol definitions", () => {
  it.each([
    ['grpc.AgentService', AgentService],
    ['grpc.Health', Health],
  ] as const)('%s has every method of Kata, in order, with its request and result types', (name, service) => {
    expect(service.typeName).toBe(name);
    expect(service.methods.map((m) => `${m.name}(${m.input.typeName}) ${m.output.typeName}`)).toEqual(kata.services[name]);
  });

  it("declares each message with Kata's field names, types and numbers", () => {
    const declared = allMessages
      .filter((m) => m.typeName.startsWith('grpc.') || m.typeName.startsWith('types.'))
      .filter((m) => m.fields.length > 0 && !m.typeName.endsWith('Entry'));
    expect(declared.length).toBeGreaterThan(30);
    for (const m of declared) {
      const theirs = kata.messages[m.typeName];
      expect(theirs, `${m.typeName} is not one of Kata's messages`).toBeDefined();
      // Type names compare without their package (Kata writes types.X where it imports it).
      const bare = (t: string | undefined) => (t ?? 'missing').replace(/\b[a-z]+\./g, '');
      for (const f of m.fields) expect(`${m.typeName}.${f.name}: ${bare(describeField(f))}`).toBe(`${m.typeName}.${f.name}: ${bare(theirs![f.name])}`);
    }
    // The facts file's list, field by field (kata-agent-protocol.md).
    expect(kata.messages['grpc.CreateContainerRequest']!.OCI).toBe('Spec = 6');
    expect(kata.messages['grpc.ReadStreamRequest']!.len).toBe('uint32 = 3');
  });

  it('field-less messages (methods osbuilder does not implement) still carry Kata names', () => {
    const names = new Set(
      Object.values(kata.services)
        .flat()
        .flatMap((s) => /\((.*)\) (.*)/.exec(s)!.slice(1)),
    );
    for (const m of allMessages.filter((x) => x.fields.length === 0 && !x.typeName.startsWith('ttrpc.'))) expect(names.has(m.typeName), m.typeName).toBe(true);
  });
});

// ---------------------------------------------------------------- a second library

function sampleScalar(t: ScalarType, seed: number): unknown {
  switch (t) {
    case ScalarType.STRING:
      return `s${seed}-é`;
    case ScalarType.BYTES:
      return new Uint8Array([seed, 0, 255]);
    case ScalarType.BOOL:
      return true;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return BigInt(-seed * 1_000_000_007);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return BigInt(seed) * 10_000_000_000n;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return -seed;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return seed + 0.5;
    default:
      return seed * 1000 + 1;
  }
}

/** A message with every field set (nested ones too, a few levels deep). */
function sample(desc: DescMessage, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  for (const [i, f] of desc.fields.entries()) {
    const seed = i + 1;
    const one = (kind: 'scalar' | 'enum' | 'message', x: DescField): unknown =>
      kind === 'scalar'
        ? sampleScalar((x as { scalar: ScalarType }).scalar, seed)
        : kind === 'enum'
          ? (x as { enum: { values: Array<{ number: number }> } }).enum.values.at(-1)!.number
          : create((x as { message: DescMessage }).message, sample((x as { message: DescMessage }).message, depth + 1));
    if (f.fieldKind === 'list') {
      if (f.listKind === 'message' && depth > 2) continue;
      init[f.localName] = [one(f.listKind, f), one(f.listKind, f)];
    } else if (f.fieldKind === 'map') {
      init[f.localName] = { k1: f.mapKind === 'message' ? create(f.message, {}) : one(f.mapKind, f) };
    } else if (f.fieldKind === 'message') {
      if (depth <= 2) init[f.localName] = one('message', f);
    } else {
      init[f.localName] = one(f.fieldKind, f);
    }
  }
  return init;
}

describe('every message decodes with a second library (protobufjs)', () => {
  const protoDir = fileURLToPath(new URL('../../agent/proto/', import.meta.url));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/') || target.startsWith('/') ? target : protoDir + target);
  root.loadSync(
    ['agent.proto', 'health.proto', 'oci.proto', 'types.proto', 'ttrpc.proto'].map((f) => protoDir + f),
    { keepCase: true },
  );

  it.each(allMessages.filter((m) => !m.typeName.endsWith('Entry')).map((m) => [m.typeName, m] as const))('%s', (_name, desc) => {
    const msg = create(desc, sample(desc));
    const bytes = toBinary(desc, msg);
    const theirs = root.lookupType(desc.typeName);
    const decoded = theirs.decode(bytes);
    expect(theirs.verify(decoded)).toBeNull();
    // Back through their encoder and our decoder: the same message.
    const again = fromBinary(desc, theirs.encode(decoded).finish());
    expect(equals(desc, again, msg)).toBe(true);
    // And a field they read by name has our value.
    const first = desc.fields.find((f) => f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING);
    if (first) expect((decoded as unknown as Record<string, unknown>)[first.name]).toBe((msg as unknown as Record<string, unknown>)[first.localName]);
  });
});

// ---------------------------------------------------------------- ttrpc

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
    const all = Buffer.concat([encodeFrame(1, 2, Buffer.from('hello')), encodeFrame(3, 2, Buffer.alloc(0)), encodeFrame(5, 2, Buffer.from('x'))]);
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
    expect(() => new FrameDecoder().push(hex('00400001 00000001 02 00'))).toThrow(/over the 4 MiB limit/);
  });
});

describe('ttrpc envelope', () => {
  it('encodes a grpc.Health/Check request byte for byte', () => {
    // Request{service=1 "grpc.Health", method=2 "Check"} (empty payload omitted).
    expect(encodeRequest({ service: 'grpc.Health', method: 'Check', payload: new Uint8Array() })).toEqual(hex('0a0b 677270632e4865616c7468 1205 436865636b'));
    const r = fromBinary(
      RequestSchema,
      encodeRequest({
        service: 'grpc.AgentService',
        method: 'WaitProcess',
        payload: new Uint8Array([1]),
        timeoutNano: 5n,
        metadata: [{ key: 'k', value: 'v' }],
      }),
    );
    expect(r).toMatchObject({ service: 'grpc.AgentService', method: 'WaitProcess', timeoutNano: 5n, metadata: [{ key: 'k', value: 'v' }] });
  });

  it('decodes a response with a status and one without (OK)', () => {
    // Response{status=1 {code=5, message="x"}, payload=2 "\x08\x01"}
    const r = decodeResponse(hex('0a05 0805 120178 1202 0801'));
    expect(r.status).toEqual({ code: 5, message: 'x' });
    expect([...r.payload]).toEqual([8, 1]);
    const ok = decodeResponse(hex('1200'));
    expect(ok.status).toEqual({ code: 0, message: '' });
    expect(ok.payload.length).toBe(0);
  });

  // Counterexamples found by parsers-property: protobuf-es's RangeError and Error escaped untyped.
  it('a malformed response or answer is AGENT_ERROR', async () => {
    expect(() => decodeResponse(hex('00'))).toThrow(
      expect.objectContaining({ code: 'AGENT_ERROR', message: expect.stringMatching(/^malformed ttrpc response from the agent: illegal tag/) }),
    );
    expect(() => decodeResponse(hex('13'))).toThrow(expect.objectContaining({ code: 'AGENT_ERROR', message: expect.stringMatching(/premature EOF/) }));
    const fromAgent = new PassThrough();
    const agent = new AgentClient(new TtrpcClient(fromAgent, new PassThrough()));
    const answer = agent.version();
    // Response{payload=2 "\x0a\x05" + "0.0.1" cut after its first 2 bytes}: a truncated VersionCheckResponse.
    fromAgent.write(encodeFrame(1, 2, hex('1204 0a05 302e')));
    await expect(answer).rejects.toMatchObject({
      code: 'AGENT_ERROR',
      message: expect.stringMatching(/^malformed \/grpc.Health\/Version answer from the agent: premature EOF/),
    });
  });
});
