/**
 * Protobuf wire format, by hand: the few proto3 messages the runtime sends are
 * small and fixed (agent/proto/*.proto), so a 100-line codec beats a schema
 * compiler. Fields with default values are omitted, as proto3 encoders do.
 */
export class ProtoWriter {
  private chunks: Buffer[] = [];

  private push(b: Buffer): this {
    this.chunks.push(b);
    return this;
  }

  static varint(value: number | bigint): Buffer {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      out.push(byte);
    } while (v);
    return Buffer.from(out);
  }

  tag(field: number, wire: number): this {
    return this.push(ProtoWriter.varint((field << 3) | wire));
  }

  /** uint32/uint64/enum (skipped when 0). */
  uint(field: number, value: number | bigint): this {
    if (BigInt(value) === 0n) return this;
    return this.tag(field, 0).push(ProtoWriter.varint(value));
  }

  /** int32/int64: negatives are sign-extended to 10 bytes, as protobuf does. */
  int(field: number, value: number | bigint): this {
    return this.uint(field, BigInt.asUintN(64, BigInt(value)));
  }

  bool(field: number, value: boolean): this {
    return this.uint(field, value ? 1 : 0);
  }

  bytes(field: number, value: Uint8Array | undefined, opts: { always?: boolean } = {}): this {
    if (!value || (value.length === 0 && !opts.always)) return this;
    return this.tag(field, 2).push(ProtoWriter.varint(value.length)).push(Buffer.from(value));
  }

  string(field: number, value: string | undefined): this {
    return value ? this.bytes(field, Buffer.from(value, 'utf8')) : this;
  }

  strings(field: number, values: readonly string[] | undefined): this {
    for (const v of values ?? []) this.tag(field, 2).push(ProtoWriter.varint(Buffer.byteLength(v))).push(Buffer.from(v, 'utf8'));
    return this;
  }

  /** An embedded message; `always` writes it even when empty (ttrpc's Status on success). */
  message(field: number, value: Buffer | undefined, opts: { always?: boolean } = {}): this {
    return this.bytes(field, value, opts);
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface ProtoField {
  field: number;
  wire: number;
  /** Wire 0, 1, 5. */
  varint: bigint;
  /** Wire 2. */
  bytes: Buffer;
}

export class ProtoDecodeError extends Error {}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let v = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= buf.length) throw new ProtoDecodeError('truncated varint');
    const byte = buf[pos++]!;
    v |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [BigInt.asUintN(64, v), pos];
  }
  throw new ProtoDecodeError('varint longer than 10 bytes');
}

/** Every field of a message, in order; throws ProtoDecodeError on malformed input. */
export function decodeFields(buf: Buffer): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) throw new ProtoDecodeError('field number 0');
    const f: ProtoField = { field, wire, varint: 0n, bytes: Buffer.alloc(0) };
    if (wire === 0) {
      [f.varint, pos] = readVarint(buf, pos);
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > buf.length) throw new ProtoDecodeError('truncated fixed field');
      f.varint = wire === 1 ? buf.readBigUInt64LE(pos) : BigInt(buf.readUInt32LE(pos));
      pos += n;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      if (len > BigInt(buf.length - p2)) throw new ProtoDecodeError('length-delimited field runs past the end');
      f.bytes = buf.subarray(p2, p2 + Number(len));
      pos = p2 + Number(len);
    } else {
      throw new ProtoDecodeError(`unsupported wire type ${wire}`);
    }
    out.push(f);
  }
  return out;
}

/** int32 from a varint field (sign-extended 64-bit on the wire). */
export function asInt32(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}
