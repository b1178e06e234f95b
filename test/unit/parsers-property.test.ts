/**
 * Property tests for every parser we own: random bytes, and valid inputs cut
 * at every length, with bytes flipped or random bytes spliced in. A parser may
 * accept its input or refuse it with an OsbuilderError of its own code (with a
 * message and a hint); nothing else may escape (no TypeError or RangeError, no
 * unhandled rejection). Async parsers must settle within fast-check's
 * per-case timeout; a sync parser that loops forever hits vitest's test timeout.
 */
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import * as tar from 'tar';
import { create, toBinary, type DescMessage, type DescMethodUnary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsbuilderError, type ErrorCode } from '../../core/errors.js';
import { parseConfig } from '../../runtime/config.js';
import { readNewc } from '../../initrd-builder/reader.js';
import { planEntries } from '../../initrd-builder/walk.js';
import { archiveChunks } from '../../initrd-builder/writer.js';
import { HEADER_SIZE, TRAILER_NAME, pad4 } from '../../initrd-builder/newc.js';
import { parseExpr, readKconfig } from '../../kernel/kconfig.js';
import { parseDotConfig } from '../../kernel/verify.js';
import { checkTarEntry, extractTarball } from '../../kernel/source.js';
import { FrameDecoder, TtrpcClient, decodeResponse, encodeFrame, MESSAGE_TYPE_RESPONSE, TTRPC_HEADER_LEN } from '../../runtime/ttrpc.js';
import { ResponseSchema } from '../../runtime/gen/ttrpc_pb.js';
import { AgentClient, AgentService, Health } from '../../runtime/agent-client.js';
import { VersionCheckResponseSchema } from '../../runtime/gen/health_pb.js';

/** Per-case bound for async properties (generous: the machine is shared). */
const CASE_TIMEOUT_MS = 10_000;

/** The only way a parser may refuse: an OsbuilderError with one of `codes`, a message and a hint. */
function expectRefusal(err: unknown, codes: ErrorCode[]): void {
  if (!(err instanceof OsbuilderError)) throw new Error(`an untyped error escaped: ${err instanceof Error ? err.stack : String(err)}`);
  expect(codes).toContain(err.code);
  expect(err.message).not.toBe('');
  expect(err.hint).not.toBe('');
}

function accepts<T>(codes: ErrorCode[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    expectRefusal(err, codes);
    return undefined;
  }
}

async function acceptsAsync<T>(codes: ErrorCode[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    expectRefusal(err, codes);
    return undefined;
  }
}

/** Random bytes, or `valid` cut short, with bytes flipped, or with random bytes spliced in. */
function damaged(valid: Buffer, maxRandom = 2048): fc.Arbitrary<Buffer> {
  const last = Math.max(0, valid.length - 1);
  return fc.oneof(
    fc.uint8Array({ maxLength: maxRandom }).map((b) => Buffer.from(b)),
    fc.nat({ max: valid.length }).map((n) => valid.subarray(0, n)),
    fc
      .tuple(fc.array(fc.tuple(fc.nat({ max: last }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat({ max: valid.length }))
      .map(([flips, cut]) => {
        const b = Buffer.from(valid);
        for (const [i, x] of flips) b[i]! ^= x;
        return b.subarray(0, Math.max(cut, valid.length - 16));
      }),
    fc
      .tuple(fc.nat({ max: valid.length }), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat({ max: 64 }))
      .map(([at, ins, del]) => Buffer.concat([valid.subarray(0, at), ins, valid.subarray(Math.min(valid.length, at + del))])),
  );
}

/** `bytes` split into chunks at random points (streaming parsers see every boundary). */
function chunked(bytes: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> {
  return fc.tuple(bytes, fc.array(fc.nat(), { maxLength: 6 })).map(([b, cuts]) => {
    const at = [...new Set(cuts.map((c) => (b.length ? c % b.length : 0)))].sort((x, y) => x - y);
    const out: Buffer[] = [];
    let prev = 0;
    for (const c of [...at, b.length]) {
      out.push(b.subarray(prev, c));
      prev = c;
    }
    return out;
  });
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'osb-fuzz-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true, maxRetries: 10 });
});

// ------------------------------------------------------------------ TOML

const KATA_TOML = `[hypervisor.qemu]
path = "/usr/bin/qemu-system-x86_64"
kernel = "/usr/share/kata-containers/vmlinux.container"
image = "/usr/share/kata-containers/kata-containers.img"
machine_type = "q35"
kernel_params = "agent.log=debug"
default_vcpus = 2
default_memory = 1024
block_device_driver = "virtio-scsi"
disable_image_nvdimm = true
shared_fs = "virtio-9p"
msize_9p = 16384
valid_hypervisor_paths = ["/usr/bin/qemu-system-x86_64"]

[agent.kata]
enable_debug = true
dial_timeout = 30
kernel_modules = []

[runtime]
internetworking_model = "tcfilter"
`;

describe('configuration.toml reader', () => {
  const parse = (text: string) => accepts(['CONFIG_INVALID'], () => parseConfig(text, 'fuzz.toml'));

  it('the valid file cut at every length: parsed or CONFIG_INVALID', () => {
    expect(parseConfig(KATA_TOML, 'fuzz.toml').hypervisor.defaultVcpus).toBe(2);
    for (let n = 0; n <= KATA_TOML.length; n++) parse(KATA_TOML.slice(0, n));
  });

  it('random, damaged and TOML-shaped text: parsed or CONFIG_INVALID', () => {
    const tomlish = fc
      .array(
        fc.constantFrom(
          '[',
          ']',
          '[[',
          ']]',
          '{',
          '}',
          '=',
          ',',
          '.',
          '"',
          "'",
          '"""',
          '\n',
          ' ',
          'hypervisor',
          'qemu',
          'agent',
          'kata',
          'image',
          'initrd',
          'default_vcpus',
          '1e400',
          '-0',
          '0x7fffffffffffffff',
          '99999999999999999999',
          'true',
          'inf',
          'nan',
          '1979-05-27T07:32:00Z',
          '\\u0000',
          '#',
        ),
        { maxLength: 60 },
      )
      .map((parts) => parts.join(''));
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 512 }),
      damaged(Buffer.from(KATA_TOML)).map((b) => b.toString('utf8')),
      tomlish,
    );
    fc.assert(
      fc.property(text, (t) => void parse(t)),
      { numRuns: 1500 },
    );
  });

  it('deep nesting: read or refused, never a stack overflow', () => {
    expect(parse(`a = ${'['.repeat(100_000)}`)).toBeUndefined();
    expect(parse(`a = ${'{ b = '.repeat(50_000)}`)).toBeUndefined();
    parse(`[${'b.'.repeat(100_000)}b]`);
  });
});

// ------------------------------------------------------------------ cpio newc

async function readAll(chunks: Buffer[]): Promise<number> {
  async function* source() {
    yield* chunks;
  }
  let n = 0;
  for await (const e of readNewc(source(), { collect: () => true })) n += e.name.length;
  return n;
}

describe('cpio newc reader', () => {
  let valid: Buffer;
  beforeAll(async () => {
    const root = join(scratch, 'cpio-root');
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'init'), '#!/bin/sh\nexec /usr/bin/kata-agent\n');
    await writeFile(join(root, 'usr/bin/kata-agent'), Buffer.alloc(301, 7));
    await symlink('usr/bin/kata-agent', join(root, 'agent'));
    const parts: Buffer[] = [];
    for await (const c of archiveChunks(planEntries(root), { entries: 0, bytes: 0, crc32: 0 })) parts.push(Buffer.from(c));
    valid = Buffer.concat(parts);
    expect(await readAll([valid])).toBeGreaterThan(0);
  });

  it('the archive cut at every length: INPUT_INVALID until the trailer entry is whole, read after it (end padding)', async () => {
    const trailerName = HEADER_SIZE + TRAILER_NAME.length + 1;
    const trailerEnd = valid.lastIndexOf('070701') + trailerName + pad4(trailerName);
    for (let n = 0; n < valid.length; n++) {
      const read = await acceptsAsync(['INPUT_INVALID'], () => readAll([valid.subarray(0, n)]));
      expect(read !== undefined).toBe(n >= trailerEnd);
    }
  });

  it('random and damaged archives in random chunks: read or INPUT_INVALID', async () => {
    await fc.assert(
      fc.asyncProperty(chunked(damaged(valid)), async (chunks) => void (await acceptsAsync(['INPUT_INVALID'], () => readAll(chunks)))),
      { numRuns: 1500, timeout: CASE_TIMEOUT_MS },
    );
  });
});

// ------------------------------------------------------------------ Kconfig and .config

const KCONFIG = `mainmenu "Linux/$(ARCH) Kernel Configuration"
config MODULES
	bool "Enable loadable module support"
	default y
	help
	  Modules.

menu "Bus options"
	depends on PCI || !X86
config PCI
	def_bool y if X86 && !UML
	select PCI_MSI
config HZ
	int "Timer frequency" if EXPERT
	range 100 1000
	default 250
endmenu

if MODULES
choice
	prompt "Compression"
config MOD_GZ
	bool "gzip"
endchoice
endif
source "arch/$(SRCARCH)/Kconfig"
`;

const DOT_CONFIG = `#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_MODULES=y
CONFIG_PCI=y
# CONFIG_MOD_GZ is not set
CONFIG_HZ=250
CONFIG_CMDLINE="console=hvc0 \\"quoted\\""
CONFIG_DEFAULT_HOSTNAME="(none)"
`;

describe('Kconfig reader', () => {
  let tree: string;
  let n = 0;
  const read = (text: Buffer | string) => {
    const root = `Kconfig.fuzz${n++}`;
    // Written per case: readKconfig reads files, as on a real tree.
    writeFileSync(join(tree, root), text);
    return accepts(['KERNEL_CONFIG'], () => readKconfig(tree, { srcarch: 'x86', arch: 'x86_64', root }));
  };

  beforeAll(async () => {
    tree = join(scratch, 'ktree');
    await mkdir(join(tree, 'arch/x86'), { recursive: true });
    await writeFile(join(tree, 'arch/x86/Kconfig'), 'config X86\n\tdef_bool y\n');
    await writeFile(join(tree, 'Kconfig'), KCONFIG);
    expect(readKconfig(tree, { srcarch: 'x86' }).symbols.has('HZ')).toBe(true);
  });

  it('the valid file cut at every length: read or KERNEL_CONFIG', () => {
    for (let i = 0; i <= KCONFIG.length; i++) read(KCONFIG.slice(0, i));
  });

  it('random, damaged and Kconfig-shaped files: read or KERNEL_CONFIG', () => {
    const words = fc
      .array(
        fc.constantFrom(
          'config ',
          'menuconfig ',
          'choice',
          'endchoice',
          'menu ',
          'endmenu',
          'if ',
          'endif',
          'source ',
          'rsource ',
          'osource ',
          '"."',
          '"Kconfig.fuzz0"',
          'depends on ',
          'visible if ',
          'select ',
          'default ',
          'def_bool ',
          'range ',
          'prompt ',
          'bool',
          'help',
          '---help---',
          'A',
          'B',
          '&&',
          '||',
          '!',
          '(',
          ')',
          '=',
          '!=',
          '<',
          '"',
          "'",
          '$(',
          '$(ARCH)',
          '\\',
          '\n',
          '\t',
          ' ',
          '\r',
          '\u2028',
          '#',
        ),
        { maxLength: 80 },
      )
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(damaged(Buffer.from(KCONFIG)), words), (t) => void read(t)),
      { numRuns: 600 },
    );
  });

  it('expressions: random text is parsed or refused as KERNEL_CONFIG', () => {
    const exprish = fc
      .array(fc.constantFrom('A', 'y', '0x1f', '-3', '"s"', '&&', '||', '!', '(', ')', '=', '>=', '$(cc-option,-m)', ' '), { maxLength: 40 })
      .map((p) => p.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), exprish), (t) => void accepts(['KERNEL_CONFIG'], () => parseExpr(t))),
      { numRuns: 2000 },
    );
  });

  it('.config: any text gives a map of symbol names, never an error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 512 }),
          damaged(Buffer.from(DOT_CONFIG)).map((b) => b.toString('utf8')),
        ),
        (t) => {
          for (const k of parseDotConfig(t).keys()) expect(k).toMatch(/^[A-Za-z0-9_]+$/);
        },
      ),
      { numRuns: 1000 },
    );
    expect(parseDotConfig(DOT_CONFIG).get('MOD_GZ')).toBe('n');
  });
});

// ------------------------------------------------------------------ tar entries

describe('kernel tarball entries', () => {
  it('checkTarEntry judges any path, type and link without throwing', () => {
    const path = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.array(fc.constantFrom('linux', '..', '.', '', '/', 'C:', 'a', '\0'), { maxLength: 12 }).map((p) => p.join('/')),
    );
    const type = fc.constantFrom('File', 'OldFile', 'Directory', 'SymbolicLink', 'Link', 'CharacterDevice', 'FIFO', 'GNUDumpDir', '');
    fc.assert(
      fc.property(path, type, fc.option(path, { nil: undefined }), fc.option(path, { nil: undefined }), (p, t, link, top) => {
        const r = checkTarEntry(p, t, link, top);
        expect(typeof r.top).toBe('string');
      }),
      { numRuns: 3000 },
    );
  });

  let validTar: Buffer;
  beforeAll(async () => {
    const src = join(scratch, 'tar-src');
    await mkdir(join(src, 'linux-6.1/scripts'), { recursive: true });
    await writeFile(join(src, 'linux-6.1/Makefile'), 'VERSION = 6\nPATCHLEVEL = 1\n');
    await writeFile(join(src, 'linux-6.1/scripts/run.sh'), '#!/bin/sh\n'.repeat(60));
    await symlink('../Makefile', join(src, 'linux-6.1/scripts/mk'));
    const file = join(scratch, 'valid.tar');
    await tar.c({ cwd: src, file, portable: true }, ['linux-6.1']);
    validTar = await readFile(file);
  });

  let n = 0;
  /** Extracts `gz` and checks the outcome: a tree (true), or INPUT_INVALID and nothing left behind (false). */
  async function extract(gz: Buffer): Promise<boolean> {
    const dir = join(scratch, `x${n++}`);
    await mkdir(dir);
    await writeFile(join(dir, 'k.tar.gz'), gz);
    const dest = join(dir, 'tree');
    const r = await acceptsAsync(['INPUT_INVALID'], () => extractTarball(join(dir, 'k.tar.gz'), 'gzip', dest));
    expect(
      await stat(dest).then(
        () => true,
        () => false,
      ),
    ).toBe(r !== undefined);
    expect(
      await stat(`${dest}.extract-${process.pid}`).then(
        () => true,
        () => false,
      ),
    ).toBe(false);
    await rm(dir, { recursive: true, force: true });
    return r !== undefined;
  }

  // Each refusal costs ~0.2 s (extractTarball waits for late writes before removing its partial tree): few runs.
  it('random and damaged tarballs (damage before and after gzip): a tree, or INPUT_INVALID and nothing extracted', async () => {
    expect(await extract(gzipSync(validTar))).toBe(true);
    const gz = fc.oneof(
      damaged(gzipSync(validTar), 256),
      damaged(validTar, 256).map((t) => gzipSync(t)),
    );
    await fc.assert(
      fc.asyncProperty(gz, async (b) => void (await extract(b))),
      { numRuns: 15, timeout: CASE_TIMEOUT_MS },
    );
  }, 60_000);

  it('a tar cut anywhere (at each entry boundary, and at random) is INPUT_INVALID, never a partial tree', async () => {
    for (let end = 0; end < validTar.length; end += 512) expect(await extract(gzipSync(validTar.subarray(0, end)))).toBe(false);
    const cut = fc.nat({ max: validTar.length - 1 });
    await fc.assert(
      fc.asyncProperty(cut, async (end) => {
        expect(await extract(gzipSync(validTar.subarray(0, end)))).toBe(false);
      }),
      { numRuns: 5, timeout: CASE_TIMEOUT_MS },
    );
  }, 60_000);
});

// ------------------------------------------------------------------ agent protocol

function responseFrame(streamId: number, payload: Uint8Array, status?: { code: number; message: string }): Buffer {
  return encodeFrame(
    streamId,
    MESSAGE_TYPE_RESPONSE,
    Buffer.from(toBinary(ResponseSchema, create(ResponseSchema, { payload, ...(status ? { status } : {}) }))),
  );
}

/** A client over in-memory streams: one call, the agent's `chunks`, then the end of the stream. */
async function callWith(chunks: Buffer[], call: (agent: AgentClient) => Promise<unknown>): Promise<unknown> {
  const fromAgent = new PassThrough();
  const toAgent = new PassThrough();
  const agent = new AgentClient(new TtrpcClient(fromAgent, toAgent));
  const answer = call(agent);
  for (const c of chunks) fromAgent.write(c);
  fromAgent.end();
  return answer;
}

const UNARY = [...Object.values(Health.method), ...Object.values(AgentService.method)].filter((m) => m.methodKind === 'unary') as unknown as Array<
  DescMethodUnary<DescMessage, DescMessage>
>;

describe('agent protocol, host side', () => {
  const version = Buffer.from(toBinary(VersionCheckResponseSchema, create(VersionCheckResponseSchema, { grpcVersion: '0.0.1', agentVersion: '3.2.0' })));
  const frames = Buffer.concat([responseFrame(1, version), responseFrame(3, Buffer.alloc(0), { code: 5, message: 'nope' })]);

  it('frame decoder: any bytes in any chunks give frames or AGENT_ERROR', () => {
    fc.assert(
      fc.property(chunked(damaged(frames)), (chunks) => {
        const d = new FrameDecoder();
        accepts(['AGENT_ERROR'], () => {
          for (const c of chunks) for (const f of d.push(c)) expect(f.payload.length).toBe(f.length);
        });
      }),
      { numRuns: 2000 },
    );
    for (let i = 0; i <= frames.length; i++) accepts(['AGENT_ERROR'], () => new FrameDecoder().push(frames.subarray(0, i)));
  });

  it('response envelope: any bytes decode or are AGENT_ERROR', () => {
    const envelope = frames.subarray(TTRPC_HEADER_LEN, frames.readUInt32BE(0) + TTRPC_HEADER_LEN);
    fc.assert(
      fc.property(damaged(envelope, 256), (b) => void accepts(['AGENT_ERROR'], () => decodeResponse(b))),
      { numRuns: 2000 },
    );
  });

  it('a call fed any stream settles: answered, or AGENT_ERROR', async () => {
    const first = TTRPC_HEADER_LEN + frames.readUInt32BE(0);
    for (let i = 0; i <= frames.length; i++) {
      const answer = await acceptsAsync(['AGENT_ERROR'], () => callWith([frames.subarray(0, i)], (a) => a.version()));
      expect(answer).toEqual(i < first ? undefined : { grpcVersion: '0.0.1', agentVersion: '3.2.0' });
    }
    await fc.assert(
      fc.asyncProperty(chunked(damaged(frames)), async (chunks) => void (await acceptsAsync(['AGENT_ERROR'], () => callWith(chunks, (a) => a.version())))),
      { numRuns: 1000, timeout: CASE_TIMEOUT_MS },
    );
  });

  it("any method's answer with a damaged payload: decoded, or AGENT_ERROR", async () => {
    const payload = fc.oneof(
      damaged(version, 256),
      fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...UNARY), payload, async (method, p) => {
        await acceptsAsync(['AGENT_ERROR'], () => callWith([responseFrame(1, p)], (a) => a.call(method, {})));
      }),
      { numRuns: 1500, timeout: CASE_TIMEOUT_MS },
    );
  });
});
