/**
 * End to end under QEMU (TCG here: KVM does not run guests on this host) with
 * the guest kernel from the kernel stage: a busybox initrd with the agent as
 * init, and an ext4 image with the DAX header via nvdimm (and as virtio-blk).
 * The guest is driven only through Kata's agent API, as kata-runtime drives
 * it: a sandbox with the 9p share, containers in it. What the guest itself
 * looks like is read from a container that binds the guest's /proc.
 * Bad guests: a panicking kernel, an agent that never answers, an interrupt,
 * a broken bundle. Every test ends with no QEMU left carrying its -name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { guestKernel, type GuestKernel } from '../support/kernel.js';
import { buildImage } from '../../image-builder/index.js';
import { agentRootfs } from '../support/agent.js';
import { agentInitrd, bootJson, vmNamer } from '../support/boot.js';
import { cliPath, runCli, repoRoot, type CliErrorJson } from '../support/cli.js';
import { makeTempDir } from '../support/fixtures.js';
import { qemuNamed, stillThere, type Proc } from '../support/procs.js';
import { nothingLeft, qemuLeft } from '../support/vm-left.js';
import { defaultAgentBinary } from '../../agent/index.js';
import { runContainerChecks } from '../../pipeline/container-checks.js';
import {
  AgentService,
  RpcError,
  boot,
  defaultContainerRootfs,
  defaultSpec,
  planQemu,
  resolveAccel,
  setRoot,
  tmpfsMount,
  Vm,
  type BootResult,
  type BootSession,
  type GuestContainer,
} from '../../runtime/index.js';
import { encodeRequest } from '../../runtime/ttrpc.js';

let dir: string;
let kernel: GuestKernel;
let initrd: string;
let image: string;
let imageOsRelease: string;
let agentVersion: string;
const vmName = vmNamer('osb-e2e');

beforeAll(async () => {
  dir = await makeTempDir('osb-e2e-');
  kernel = await guestKernel();
  agentVersion = (await defaultAgentBinary()).version;
  initrd = await agentInitrd(dir, 'agent');
  const root = await agentRootfs(join(dir, 'image-root'));
  imageOsRelease = await readFile(join(root, 'etc/os-release'), 'utf8');
  image = join(dir, 'kata.img');
  await buildImage({ rootfs: root, output: image });
});

/** A container looking at the guest: its init's mounts, the kernel, the command line, its own os-release. */
const GUEST_VIEW = ['--guest-mount', '/proc:/guest/proc'];
const guestView = (...extra: string[]) => [
  'sh',
  '-c',
  ['cat /guest/proc/1/mounts', 'uname -r', 'cat /proc/cmdline', 'cat /etc/os-release', ...extra].join('; echo @@; '),
];
const parts = (stdout: string) => stdout.split('\n@@\n');

describe('boot an initrd with the agent as init', () => {
  it('creates the sandbox, runs the default container, shows the initramfs root and the kernel release', async () => {
    const consoleLog = join(dir, 'initrd-console.log');
    const name = vmName();
    const r = await bootJson(name, kernel.bzImage, ['--initrd', initrd, '--console-log', consoleLog, ...GUEST_VIEW], guestView('echo pid=$$ host=$(hostname)'));
    expect(r.exitCode).toBe(0);
    const j = r.json!;
    expect(j.agent).toMatchObject({ version: agentVersion, grpcVersion: '0.0.1', storageHandlers: expect.arrayContaining(['9p']) });
    expect(j.channel).toBe('serial');
    expect(j.channelReason).toMatch(/vhost-vsock/);
    expect(j.sandboxId).toBe(name);
    expect(j.initrd).toBe(initrd);
    expect(j.container).toMatchObject({ source: 'default', exitCode: 0, stderr: '' });
    const [mounts, release, , osRelease, ids] = parts(j.container!.stdout!);
    const table = mounts!.split('\n').map((l: string) => l.split(' ').slice(0, 3).join(' '));
    expect(table[0]).toMatch(/^(rootfs|none) \/ (rootfs|tmpfs|ramfs)$/);
    for (const m of [
      'proc /proc proc',
      'sysfs /sys sysfs',
      'dev /dev devtmpfs',
      'devpts /dev/pts devpts',
      'tmpfs /run tmpfs',
      'tmpfs /tmp tmpfs',
      'cgroup2 /sys/fs/cgroup cgroup2',
    ])
      expect(table).toContain(m);
    // The 9p share, mounted by CreateSandbox where Kata's runtime puts container rootfs.
    expect(mounts).toMatch(/^kataShared \/run\/kata-containers\/shared\/containers 9p .*trans=virtio/m);
    expect(release!.trim()).toBe(kernel.release);
    expect(`${osRelease}\n`).toBe((await defaultContainerRootfs()).osRelease);
    expect(ids!.trim()).toBe('pid=1 host=osbuilder');
    expect(j.shutdown).toBe('clean');
    expect(j.timings.qemuStartToAgentReadyMs).toBeGreaterThan(0);
    expect(j.timings.containerMs).toBeGreaterThan(0);
    expect(j.kernelParams).toEqual(expect.arrayContaining(['console=hvc0', 'panic=1', 'iommu=off']));
    expect(j.qemu.argv).toEqual(expect.arrayContaining(['virtio-9p-pci,disable-modern=false,fsdev=extra-9p-kataShared,mount_tag=kataShared']));
    expect(await readFile(consoleLog, 'utf8')).toMatch(/kata-agent: .* starting as init/);
  });

  it("exits with the container's exit code, streams its output apart, passes stdin with -i (human output)", async () => {
    const name = vmName();
    const r = await runCli(
      [
        'boot',
        '-i',
        '--name',
        name,
        '--hostname',
        'e2e-host',
        '--kernel',
        kernel.bzImage,
        '--initrd',
        initrd,
        '--memory',
        '512',
        '--timeout',
        '300',
        '--',
        'sh',
        '-c',
        'echo to-out; hostname; cat; echo to-err >&2; exit 7',
      ],
      { timeout: 10 * 60_000, input: 'from-stdin\n' },
    );
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe('to-out\ne2e-host\nfrom-stdin'); // runCli strips the final newline
    expect(r.stderr).toMatch(/to-err/);
    expect(r.stderr).toMatch(/^agent .* \(api 0\.0\.1\) over serial, (kvm|tcg)/m);
    expect(r.stderr).toMatch(/^container osb-[0-9a-f]+ \(default rootfs\) exited with 7$/m);
    expect(r.stderr).toMatch(/^timings: qemu start -> agent ready \d+ ms, container \d+ ms, shutdown \d+ ms \(clean\), total \d+ ms$/m);
    await nothingLeft(name);
  });

  it('runs an OCI bundle (config.json + rootfs) with its own args, env, cwd, user and hostname', async () => {
    const bundle = join(dir, 'bundle');
    await mkdir(join(bundle, 'rootfs'), { recursive: true });
    await execa('cp', ['-a', `${(await defaultContainerRootfs()).path}/.`, join(bundle, 'rootfs')]);
    await writeFile(join(bundle, 'rootfs/etc/os-release'), 'ID=bundle\nPRETTY_NAME="my bundle"\n');
    await mkdir(join(bundle, 'rootfs/work'), { recursive: true });
    const data = join(dir, 'bundle-data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'note'), 'shared from the host\n');
    const config = {
      ociVersion: '1.1.0',
      process: {
        terminal: false,
        user: { uid: 1000, gid: 1000 },
        args: ['sh', '-c', 'id -u; id -g; pwd; echo $GREETING; hostname; cat /etc/os-release /data/note'],
        env: ['PATH=/bin', 'GREETING=hello'],
        cwd: '/work',
      },
      root: { path: 'rootfs', readonly: true },
      hostname: 'bundle-host',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/data', type: 'bind', source: data, options: ['rbind', 'ro'] },
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network' }] },
    };
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    const name = vmName();
    const r = await bootJson(name, kernel.bzImage, ['--initrd', initrd, '--bundle', bundle], []);
    expect(r.exitCode).toBe(0);
    expect(r.json!.container).toMatchObject({ source: 'bundle', rootfs: join(bundle, 'rootfs'), exitCode: 0 });
    expect(r.json!.container!.stdout).toBe('1000\n1000\n/work\nhello\nbundle-host\nID=bundle\nPRETTY_NAME="my bundle"\nshared from the host\n');
  });
});

/**
 * One VM, many requests: boot()'s session holds the sandbox open while each
 * test uses it, then DestroySandbox and the VM's power-off end it.
 */
describe('the agent API in a booted initrd (one sandbox)', () => {
  let session: BootSession;
  let done: () => void;
  let booted: ReturnType<typeof boot>;
  const name = vmName();
  let n = 0;

  beforeAll(async () => {
    const held = new Promise<void>((r) => (done = r));
    await new Promise<void>((ready, fail) => {
      const hold = async (s: BootSession) => {
        session = s;
        ready();
        await held;
      };
      booted = boot({ overrides: { kernel: kernel.bzImage, initrd, memory: 512 }, timeoutSec: 300, name, session: hold });
      booted.catch(fail);
    });
  }, 10 * 60_000);

  afterAll(async () => {
    done?.();
    const r = await booted;
    expect(r.shutdown).toBe('clean');
    await nothingLeft(name);
  });

  async function container(args: string[], edit?: (s: ReturnType<typeof defaultSpec>) => void): Promise<GuestContainer> {
    const spec = defaultSpec({ args, hostname: session.hostname });
    setRoot(spec, (await defaultContainerRootfs()).path, true);
    spec.Mounts.push(tmpfsMount('/tmp'));
    edit?.(spec);
    return session.sandbox.createContainer(`api-${++n}`, { spec, readonlyRootfs: true });
  }

  async function rpcStatus(p: Promise<unknown>): Promise<{ code: number; message: string }> {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(RpcError);
    return (e as RpcError).status;
  }

  it('8 MiB of stdout arrives complete and in order', async () => {
    const c = await container(['sh', '-c', 'i=0; while [ $i -lt 131072 ]; do printf "%063d\\n" $i; i=$((i+1)); done']);
    await c.start();
    const hash = createHash('sha256');
    let bytes = 0;
    expect(await c.init.run({ onStdout: (b) => (hash.update(b), (bytes += b.length)) })).toBe(0);
    const want = createHash('sha256');
    for (let i = 0; i < 131072; i++) want.update(`${String(i).padStart(63, '0')}\n`);
    expect(bytes).toBe(8 << 20);
    expect(hash.digest('hex')).toBe(want.digest('hex'));
    await c.remove();
  });

  it('a stdin round trip through cat (WriteStdin, CloseStdin)', async () => {
    const c = await container(['cat']);
    await c.start();
    const input = Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i}\n`).join(''));
    const out: Uint8Array[] = [];
    expect(await c.init.run({ stdin: input, onStdout: (b) => out.push(b) })).toBe(0);
    expect(Buffer.concat(out).equals(input)).toBe(true);
    await c.remove();
  });

  it('SignalProcess SIGTERM: 143 for an exec, 137 for an init that does not handle it, as kata-agent reports', async () => {
    const c = await container(['sleep', '600']);
    await c.start();
    const p = await c.exec('sleeper', { Args: ['sleep', '600'], Cwd: '/', Env: ['PATH=/bin'], User: { UID: 0, GID: 0 } });
    await p.signal(15);
    expect(await p.wait()).toBe(143);
    await c.init.signal(15);
    expect(await c.init.wait()).toBe(137);
    await c.remove();
  });

  it('two containers in one sandbox run at once, with requests interleaved on one connection', async () => {
    const [a, b] = await Promise.all([container(['sh', '-c', 'read x; echo a:$x; exit 4']), container(['sh', '-c', 'read x; echo b:$x; exit 5'])]);
    await Promise.all([a.start(), b.start()]);
    const outA: Uint8Array[] = [];
    const outB: Uint8Array[] = [];
    const [sa, sb] = await Promise.all([
      a.init.run({ stdin: Buffer.from('one\n'), onStdout: (x) => outA.push(x) }),
      b.init.run({ stdin: Buffer.from('two\n'), onStdout: (x) => outB.push(x) }),
    ]);
    expect([sa, sb, Buffer.concat(outA).toString(), Buffer.concat(outB).toString()]).toEqual([4, 5, 'a:one\n', 'b:two\n']);
    await Promise.all([a.remove(), b.remove()]);
  });

  it("answers an unimplemented method and an unknown path with kata-agent's statuses", async () => {
    const ttrpc = session.sandbox.client.ttrpc;
    expect(await rpcStatus(ttrpc.call('grpc.AgentService', 'UpdateInterface', new Uint8Array()))).toEqual({
      code: 5,
      message: '/grpc.AgentService/UpdateInterface is not supported',
    });
    expect(await rpcStatus(ttrpc.call('grpc.AgentService', 'NoSuchMethod', new Uint8Array()))).toEqual({ code: 12, message: 'NoSuchMethod method' });
    expect(await rpcStatus(ttrpc.call('osbuilder.Guest', 'Exec', new Uint8Array()))).toEqual({ code: 3, message: 'osbuilder.Guest service does not exist' });
  });

  it('answers a garbage frame with an error status, then the next valid request', async () => {
    const ttrpc = session.sandbox.client.ttrpc;
    expect((await rpcStatus(ttrpc.send('garbage', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))).code).toBe(3);
    // A known method with a truncated payload: UNKNOWN, as ttrpc-rust answers a failed decode.
    expect(
      (
        await rpcStatus(
          ttrpc.send('truncated', encodeRequest({ service: 'grpc.AgentService', method: 'CreateContainer', payload: Buffer.from([0x0a, 0x7f, 0x41]) })),
        )
      ).code,
    ).toBe(2);
    expect(await session.sandbox.client.check()).toBe(1);
  });

  it('CreateContainer with a missing rootfs: an error naming the path; an unknown container: InvalidContainerId', async () => {
    const spec = defaultSpec({ args: ['true'], hostname: session.hostname });
    setRoot(spec, '/run/kata-containers/shared/containers/no-such/rootfs', false);
    const s = await rpcStatus(session.sandbox.client.call(AgentService.method.createContainer, { containerId: 'no-such', execId: 'no-such', OCI: spec }));
    expect(s.message).toContain('/run/kata-containers/shared/containers/no-such/rootfs');
    expect(await rpcStatus(session.sandbox.client.call(AgentService.method.waitProcess, { containerId: 'no-such' }))).toEqual({
      code: 3,
      message: 'InvalidContainerId',
    });
  });
});

describe('boot an ext4 image', () => {
  it('via nvdimm: root on /dev/pmem0p1 mounted with dax', async () => {
    const r = await bootJson(vmName(), kernel.bzImage, ['--image', image, ...GUEST_VIEW], guestView());
    expect(r.exitCode).toBe(0);
    const [mounts, release, cmdline] = parts(r.json!.container!.stdout!);
    const root = mounts!.split('\n').find((l: string) => l.split(' ')[1] === '/');
    expect(root).toMatch(/^\/dev\/(root|pmem0p1) \/ ext4 ro,/);
    expect(root).toMatch(/[ ,]dax/);
    expect(release!.trim()).toBe(kernel.release);
    expect(cmdline).toMatch(/root=\/dev\/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4/);
    expect(r.json!.image).toBe(image);
    expect(r.json!.qemu.argv).toEqual(expect.arrayContaining(['nvdimm,id=nv0,memdev=mem0,unarmed=on']));
  });

  it('passes the boot test of osbuilder build: pid 1, hostname, cgroup limits, exec, exit status, its own os-release', async () => {
    const name = vmName();
    const rpcs = new Set<string>();
    const r = await boot({
      overrides: { kernel: kernel.bzImage, image, memory: 512 },
      timeoutSec: 300,
      name,
      hostname: 'osb-boot-test',
      session: (s) => runContainerChecks(s, imageOsRelease),
      observe: (p) => rpcs.add(p),
    });
    expect(r.session).toMatchObject({
      initPid: 1,
      hostname: 'osb-boot-test',
      memoryMax: 268435456,
      pidsMax: 128,
      initStatus: 3,
      execStatus: 0,
      guestOs: 'osbuilder busybox test',
    });
    expect([...rpcs].every((p) => p.startsWith('/grpc.AgentService/') || p.startsWith('/grpc.Health/'))).toBe(true);
    expect(rpcs).toContain('/grpc.AgentService/ExecProcess');
    await nothingLeft(name);
  });

  it('via virtio-blk with --disable-image-nvdimm: root on /dev/vda1, no dax', async () => {
    const r = await bootJson(vmName(), kernel.bzImage, ['--image', image, '--disable-image-nvdimm', ...GUEST_VIEW], guestView());
    expect(r.exitCode).toBe(0);
    const [mounts, , cmdline] = parts(r.json!.container!.stdout!);
    const root = mounts!.split('\n').find((l: string) => l.split(' ')[1] === '/');
    expect(root).toMatch(/^\/dev\/(root|vda1) \/ ext4 ro,/);
    expect(root).not.toMatch(/dax/);
    expect(cmdline).toMatch(/root=\/dev\/vda1 /);
  });

  it('from a configuration.toml (virtio-blk, 2 vCPUs)', async () => {
    const cfg = join(dir, 'configuration.toml');
    await writeFile(
      cfg,
      `[hypervisor.qemu]\nkernel = "${kernel.bzImage}"\nimage = "${image}"\ndisable_image_nvdimm = true\ndefault_memory = 512\ndefault_vcpus = 2\nshared_fs = "virtio-9p"\n[agent.kata]\ndial_timeout = 300\n`,
    );
    const name = vmName();
    const r = await runCli<BootResult>(
      ['boot', '--json', '--name', name, '--config', cfg, '--', 'sh', '-c', 'grep -c ^processor /proc/cpuinfo; cat /proc/cmdline'],
      { timeout: 10 * 60_000 },
    );
    expect(r.exitCode).toBe(0);
    const [cpus, cmdline] = r.json!.container!.stdout!.split('\n');
    expect(cpus).toBe('2');
    expect(cmdline).toMatch(/root=\/dev\/vda1 /);
    await nothingLeft(name);
  });
});

describe('the agent as init, through the runtime API', () => {
  it('powers the VM off when the host leaves the channel for good (agent.hangup_timeout)', async () => {
    const runDir = await makeTempDir('osb-hangup-');
    const channel = { kind: 'serial' as const, socket: join(runDir, 'agent.sock') };
    const { accel } = await resolveAccel('auto', 'qemu-system-x86_64');
    const name = vmName();
    const plan = planQemu({
      arch: 'x86_64',
      qemu: 'qemu-system-x86_64',
      machineType: 'q35',
      accel,
      kernel: kernel.bzImage,
      root: { kind: 'initrd', path: initrd },
      vcpus: 1,
      memoryMiB: 512,
      extraKernelParams: 'agent.hangup_timeout=2',
      channel,
      qmpSocket: join(runDir, 'qmp.sock'),
      console: 'hvc',
      entropySource: '/dev/urandom',
      name,
      debug: false,
      agentDebug: false,
    });
    const vm = Vm.start({ plan, channel });
    try {
      const { client } = await vm.waitForAgent(vm.startedAt + 300_000);
      expect(await client.check()).toBe(1);
      client.close();
      // Nobody kills QEMU here: the guest powers itself off.
      const exit = await vm.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(vm.consoleTail()).toMatch(/host closed the channel and did not come back within 2s/);
      expect(vm.consoleTail()).toMatch(/powering off/);
    } finally {
      await vm.kill();
    }
    expect(await qemuLeft(name)).toBe('');
  });
});

describe('bad input and bad guests: a clear error, non-zero exit, no QEMU left', () => {
  it('a broken bundle (bad config.json) is refused before any VM starts', async () => {
    const bundle = join(dir, 'broken-bundle');
    await mkdir(join(bundle, 'rootfs'), { recursive: true });
    await writeFile(join(bundle, 'config.json'), '{"ociVersion": "1.1.0", "process": {"args": "sh"}, "root": {"path": "rootfs"}}');
    const name = vmName();
    const r = await runCli<CliErrorJson>(['boot', '--json', '--debug', '--name', name, '--kernel', kernel.bzImage, '--initrd', initrd, '--bundle', bundle], {
      timeout: 60_000,
    });
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('INPUT_INVALID');
    expect(r.json!.error.message).toContain(join(bundle, 'config.json'));
    expect(r.json!.error.message).toMatch(/process\.args/);
    expect(r.stderr).not.toMatch(/qemu-system/);
    await nothingLeft(name);
    await writeFile(join(bundle, 'config.json'), '{"ociVersion": ');
    const cut = await runCli(['boot', '--name', name, '--kernel', kernel.bzImage, '--initrd', initrd, '--bundle', bundle]);
    expect(cut.exitCode).toBe(1);
    expect(cut.stderr).toMatch(/^error\[INPUT_INVALID\]: .*config\.json.*JSON/m);
  });

  it('--channel vsock without a usable /dev/vhost-vsock is UNSUPPORTED, with a hint', async () => {
    const usable = await stat('/dev/vhost-vsock').then(
      () => true,
      () => false,
    );
    const name = vmName();
    const r = await runCli<BootResult | CliErrorJson>(
      ['boot', '--json', '--name', name, '--channel', 'vsock', '--kernel', kernel.bzImage, '--initrd', initrd, '--', 'true'],
      { timeout: 10 * 60_000 },
    );
    if (usable) {
      expect(r.exitCode).toBe(0);
      expect(r.json).toMatchObject({ channel: 'vsock' });
    } else {
      expect(r.exitCode).toBe(1);
      expect(r.json).toMatchObject({ error: { code: 'UNSUPPORTED', hint: expect.stringMatching(/--channel serial/) } });
    }
    await nothingLeft(name);
  });

  it('a kernel panic (the initrd /init exits) is BOOT_FAILED with the panic line', async () => {
    const bad = await agentInitrd(dir, 'exits', '#!/bin/sh\necho OSB-INIT-EXITING\nexit 0\n');
    const name = vmName();
    const r = await runCli(['boot', '--name', name, '--kernel', kernel.bzImage, '--initrd', bad, '--memory', '512', '--timeout', '300', '--', 'true'], {
      timeout: 10 * 60_000,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error\[BOOT_FAILED\]: kernel panic before the agent answered: Kernel panic - not syncing: Attempted to kill init!/m);
    expect(r.stderr).toMatch(/OSB-INIT-EXITING/);
    await nothingLeft(name);
  });

  it('an agent that never answers (/init sleeps) is BOOT_TIMEOUT after --timeout', async () => {
    const bad = await agentInitrd(dir, 'sleeps', '#!/bin/sh\necho OSB-INIT-SLEEPING\nexec sleep 100000\n');
    const name = vmName();
    const r = await runCli<CliErrorJson>(
      ['boot', '--json', '--name', name, '--kernel', kernel.bzImage, '--initrd', bad, '--memory', '512', '--timeout', '20', '--', 'true'],
      { timeout: 10 * 60_000 },
    );
    expect(r.exitCode).toBe(1);
    expect(r.json!.error.code).toBe('BOOT_TIMEOUT');
    expect(r.json!.error.message).toMatch(/^the agent did not answer within 20\.0s/);
    expect(r.json!.error.hint).toMatch(/raise --timeout/);
    await nothingLeft(name);
  });

  it('SIGTERM the moment QEMU is up: when osbuilder has exited, nothing of that VM is left, zombie or not (10 rounds)', async () => {
    for (let round = 1; round <= 10; round++) {
      const name = vmName();
      const child = execa(
        'node',
        [cliPath, 'boot', '--name', name, '--kernel', kernel.bzImage, '--initrd', initrd, '--memory', '512', '--timeout', '300', '--', 'sleep', '600'],
        { reject: false, cwd: repoRoot },
      );
      let ended = false;
      void child.finally(() => (ended = true));
      let vm: Proc[] = [];
      while (!ended && !(vm = await qemuNamed(name)).length) await new Promise((r) => setTimeout(r, 10));
      expect(ended, `round ${round}: boot ended before its QEMU started`).toBe(false);
      child.kill('SIGTERM');
      const r = await child;
      // At this moment, not a moment later: osbuilder must have reaped its QEMU before exiting.
      const left = [...(await stillThere(vm)), ...(await qemuNamed(name)).map((p) => `${p.pid} ${p.comm} ${p.state}`)];
      expect({ round, exitCode: r.exitCode, left }).toEqual({ round, exitCode: 143, left: [] });
      expect(r.stderr).toMatch(/interrupted \(SIGTERM\): cleaning up/);
      await nothingLeft(name);
    }
  });
});

describe('boot --help', () => {
  it("documents the issue's flags", async () => {
    const r = await runCli(['boot', '--help']);
    for (const flag of [
      '--config',
      '--kernel',
      '--image',
      '--initrd',
      '--kernel-params',
      '--vcpus',
      '--memory',
      '--accel',
      '--timeout',
      '--console-log',
      '--bundle',
      '--rootfs',
      '--interactive',
      '--hostname',
      '--guest-mount',
      '--channel',
    ])
      expect(r.stdout).toContain(flag);
  });
});
