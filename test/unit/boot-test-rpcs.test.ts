/**
 * The boot test of `osbuilder build` against an in-process fake of Kata's
 * agent: it sends only methods of Kata's grpc.AgentService and grpc.Health
 * (so a real kata-agent can pass it), in kata-runtime's order, and the
 * container it asks for carries the limits and mounts the checks rely on.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { create, fromBinary, toBinary, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { AgentClient, AgentService, Health } from '../../runtime/agent-client.js';
import { GuestSandbox } from '../../runtime/sandbox.js';
import type { SharedDir } from '../../runtime/shared-fs.js';
import type { TtrpcClient } from '../../runtime/ttrpc.js';
import type { Spec } from '../../runtime/oci.js';
import type { BootSession } from '../../runtime/boot-prepare.js';
import { BOOT_TEST_LIMITS, BOOT_TEST_STDIN, runContainerChecks } from '../../pipeline/container-checks.js';

const fixture = JSON.parse(await readFile(new URL('../fixtures/kata-protocol.json', import.meta.url), 'utf8')) as { services: Record<string, string[]> };
const kataPaths = Object.entries(fixture.services).flatMap(([svc, methods]) => methods.map((m) => `/${svc}/${m.split('(')[0]}`));

const GUEST_OS = 'PRETTY_NAME="Guest OS"\nID=guest\n';
const CTR_OS = 'NAME="osbuilder container"\nID=osbuilder-container\nPRETTY_NAME="ctr"\n';

/** The fields of the requests the boot test sends that the fake reads. */
interface FakeRequest {
  OCI?: Spec;
  execId: string;
  data: Uint8Array;
}

/** A container that behaves as the checks expect, driven by the requests it gets. */
class FakeAgent {
  spec: Spec | undefined;
  stdin = '';
  stdinClosed = false;
  private sent = new Map<string, number>();
  private wake: Array<() => void> = [];

  private report(execId: string): string[] {
    if (execId === 'osb-boot-test-exec') return ['@@pid@@\n9\n@@init@@\nsh -c ...\n@@os-id@@\nID=osbuilder-container\n'];
    const c = this.spec!;
    return [
      `@@pid@@\n1\n@@hostname@@\n${c.Hostname}\n@@memory.max@@\n${c.Linux!.Resources!.Memory!.Limit}\n@@pids.max@@\n${c.Linux!.Resources!.Pids!.Limit}\n@@os-release@@\n${CTR_OS}@@guest-os-release@@\n${GUEST_OS}@@ready@@\n`,
      '', // the line read from stdin, once it is closed
    ];
  }

  private async readStdout(execId: string): Promise<Uint8Array> {
    const i = this.sent.get(execId) ?? 0;
    const parts = this.report(execId);
    if (i === 1 && execId !== 'osb-boot-test-exec') {
      while (!this.stdinClosed) await new Promise<void>((r) => this.wake.push(r));
      parts[1] = `@@stdin@@\n${this.stdin}`;
    }
    this.sent.set(execId, i + 1);
    return Buffer.from(parts[i] ?? '');
  }

  async handle(method: string, req: FakeRequest): Promise<object> {
    switch (method) {
      case 'CreateContainer':
        this.spec = req.OCI;
        return {};
      case 'ReadStdout':
        return { data: await this.readStdout(req.execId) };
      case 'ReadStderr':
        return { data: new Uint8Array() };
      case 'WriteStdin':
        expect(req.execId).toBe('osb-boot-test');
        this.stdin += Buffer.from(req.data).toString();
        return { len: req.data.length };
      case 'CloseStdin':
        this.stdinClosed ||= req.execId === 'osb-boot-test';
        this.wake.splice(0).forEach((w) => w());
        return {};
      case 'WaitProcess':
        return { status: req.execId === 'osb-boot-test-exec' ? 0 : 3 };
      default:
        return {};
    }
  }

  /** A TtrpcClient's `call`, answering with the generated codecs of Kata's services. */
  client(): TtrpcClient {
    const services: DescService[] = [AgentService, Health];
    return {
      call: async (service: string, method: string, payload: Uint8Array) => {
        const m = services.find((s) => s.typeName === service)?.methods.find((x) => x.name === method);
        if (!m) throw new Error(`not a Kata method: ${service}/${method}`);
        const out = await this.handle(method, fromBinary(m.input as DescMessage, payload) as unknown as FakeRequest);
        return toBinary(m.output as DescMessage, create(m.output as DescMessage, out as Record<string, unknown>));
      },
    } as unknown as TtrpcClient;
  }
}

describe('the boot test sends only Kata standard RPCs', () => {
  it('runs its container through CreateContainer … RemoveContainer and passes a container that behaves', async () => {
    const fake = new FakeAgent();
    const calls: string[] = [];
    const client = new AgentClient(fake.client(), (p) => calls.push(p));
    const shared = {
      shareRootfs: async (id: string) => `/run/kata-containers/shared/containers/${id}/rootfs`,
      shareMountSource: async () => {
        throw new Error('the boot test binds no host path');
      },
    } as unknown as SharedDir;
    const sandbox = new GuestSandbox(client, shared, 'sbx');
    const checks = await runContainerChecks({ sandbox, hostname: 'osb-boot-test' } as BootSession, GUEST_OS, {
      path: '/cache/ctr-rootfs',
      osRelease: CTR_OS,
      busyboxSha256: '0',
    });
    expect(checks).toMatchObject({
      initPid: 1,
      hostname: 'osb-boot-test',
      memoryMax: BOOT_TEST_LIMITS.memoryBytes,
      pidsMax: BOOT_TEST_LIMITS.pids,
      guestOs: 'Guest OS',
      containerOs: 'ctr',
      execPid: 9,
      initStatus: 3,
    });
    expect(fake.stdin).toBe(`${BOOT_TEST_STDIN}\n`);
    for (const p of calls) expect(kataPaths).toContain(p);
    const order = [...new Set(calls)].map((p) => p.split('/').pop());
    expect(order).toEqual([
      'CreateContainer',
      'StartContainer',
      'ReadStdout',
      'ReadStderr',
      'ExecProcess',
      'CloseStdin',
      'WaitProcess',
      'WriteStdin',
      'RemoveContainer',
    ]);
    // The container: the shared rootfs read-only in the guest, the guest's os-release bound, the limits.
    const spec = fake.spec!;
    expect(spec.Root).toMatchObject({ Path: '/run/kata-containers/shared/containers/osb-boot-test/rootfs', Readonly: true });
    expect(spec.Mounts).toEqual(
      expect.arrayContaining([expect.objectContaining({ destination: '/guest/os-release', source: '/etc/os-release', type: 'bind' })]),
    );
    expect(spec.Linux!.Namespaces.map((n) => n.Type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
  });

  it('every RPC the runtime can send is one of Kata', () => {
    const ours = [AgentService, Health].flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`));
    for (const p of ours) expect(kataPaths).toContain(p);
  });
});
