/** config.json (runc's format) to Kata's protobuf Spec; the default spec; the boot test's report checks. */
import { describe, expect, it } from 'vitest';
import { defaultSpec, parseConfigJson, specFromConfig, DEFAULT_CAPABILITIES } from '../../runtime/oci.js';
import { BOOT_TEST_LIMITS, BOOT_TEST_STDIN, sections, verifyReports } from '../../pipeline/container-checks.js';
import type { OsbuilderError } from '../../core/errors.js';

/** What `runc spec` writes, trimmed, with a few extra fields set. */
const RUNC_CONFIG = {
  ociVersion: '1.0.2-dev',
  process: {
    terminal: false,
    user: { uid: 1000, gid: 1000, additionalGids: [10, 20] },
    args: ['sh', '-c', 'id'],
    env: ['PATH=/usr/bin:/bin', 'TERM=xterm'],
    cwd: '/work',
    capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], ambient: [] },
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 512 }],
    noNewPrivileges: true,
    oomScoreAdj: -100,
  },
  root: { path: 'rootfs', readonly: true },
  hostname: 'runc',
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'ro'] },
  ],
  annotations: { 'io.example/a': 'b' },
  linux: {
    resources: {
      memory: { limit: 268435456, swap: 536870912 },
      pids: { limit: 64 },
      cpu: { shares: 512, quota: 50000, period: 100000 },
      devices: [{ allow: false, access: 'rwm' }],
    },
    cgroupsPath: '/ctr/1',
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/x' }, { type: 'mount' }],
    sysctl: { 'net.ipv4.ip_forward': '1' },
    maskedPaths: ['/proc/kcore'],
    readonlyPaths: ['/proc/sys'],
    rootfsPropagation: 'rslave',
  },
};

function error(fn: () => unknown): OsbuilderError {
  try {
    fn();
  } catch (e) {
    return e as OsbuilderError;
  }
  throw new Error('expected an error');
}

describe('config.json to the protobuf Spec', () => {
  it('carries every field osbuilder reads, under Kata field names', () => {
    const s = specFromConfig(RUNC_CONFIG, 'b/config.json');
    expect(s.Version).toBe('1.0.2-dev');
    expect(s.Process).toMatchObject({
      Terminal: false,
      Args: ['sh', '-c', 'id'],
      Env: ['PATH=/usr/bin:/bin', 'TERM=xterm'],
      Cwd: '/work',
      NoNewPrivileges: true,
      OOMScoreAdj: -100n,
    });
    expect(s.Process!.User).toMatchObject({ UID: 1000, GID: 1000, AdditionalGids: [10, 20] });
    expect(s.Process!.Capabilities).toMatchObject({ Bounding: ['CAP_KILL'], Effective: ['CAP_KILL'], Permitted: ['CAP_KILL'], Ambient: [] });
    expect(s.Process!.Rlimits[0]).toMatchObject({ Type: 'RLIMIT_NOFILE', Hard: 1024n, Soft: 512n });
    expect(s.Root).toMatchObject({ Path: 'rootfs', Readonly: true });
    expect(s.Mounts.map((m) => [m.destination, m.type, m.source, m.options])).toEqual([
      ['/proc', 'proc', 'proc', []],
      ['/data', 'bind', '/srv/data', ['rbind', 'ro']],
    ]);
    expect(s.Annotations).toEqual({ 'io.example/a': 'b' });
    expect(s.Linux!.Resources).toMatchObject({
      Memory: { Limit: 268435456n, Swap: 536870912n },
      Pids: { Limit: 64n },
      CPU: { Shares: 512n, Quota: 50000n, Period: 100000n },
    });
    expect(s.Linux!.Resources!.Devices[0]).toMatchObject({ Allow: false, Access: 'rwm', Major: -1n, Minor: -1n });
    expect(s.Linux).toMatchObject({
      CgroupsPath: '/ctr/1',
      Sysctl: { 'net.ipv4.ip_forward': '1' },
      MaskedPaths: ['/proc/kcore'],
      ReadonlyPaths: ['/proc/sys'],
      RootfsPropagation: 'rslave',
    });
    expect(s.Linux!.Namespaces.map((n) => [n.Type, n.Path])).toEqual([
      ['pid', ''],
      ['network', '/var/run/netns/x'],
      ['mount', ''],
    ]);
  });

  it.each([
    ['not JSON', '{"process": ', /b\/config\.json is not valid JSON/],
    ['no process', '{"root": {"path": "r"}}', /b\/config\.json: process is missing/],
    ['args not strings', '{"process": {"args": ["sh", 1]}, "root": {"path": "r"}}', /process\.args must be an array of strings/],
    ['a bad uid', '{"process": {"user": {"uid": -1}}, "root": {"path": "r"}}', /process\.user\.uid must be a whole number between 0 and 4294967295/],
    ['no root path', '{"process": {}, "root": {}}', /root\.path is missing/],
    ['a mount that is not an object', '{"process": {}, "root": {"path": "r"}, "mounts": [3]}', /mounts\[0\] must be an object/],
    [
      'a memory limit that is not a number',
      '{"process": {}, "root": {"path": "r"}, "linux": {"resources": {"memory": {"limit": "1G"}}}}',
      /linux\.resources\.memory\.limit must be a whole number/,
    ],
  ])('refuses %s, naming the JSON path', (_what, text, message) => {
    const e = error(() => parseConfigJson(text, 'b/config.json'));
    expect(e.code).toBe('INPUT_INVALID');
    expect(e.message).toMatch(message);
    expect(e.hint).toMatch(/config\.json/);
  });
});

describe('the default spec (what runc spec writes)', () => {
  it("has runc's mounts and namespaces, containerd's capabilities, and the limits asked for", () => {
    const s = defaultSpec({ args: ['true'], hostname: 'h', memoryLimit: 1 << 28, pidsLimit: 10 });
    expect(s.Mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup']);
    expect(s.Linux!.Namespaces.map((n) => n.Type)).toEqual(['pid', 'network', 'ipc', 'uts', 'mount']);
    expect(s.Process!.Capabilities!.Bounding).toEqual(DEFAULT_CAPABILITIES);
    expect(s.Process!.Env[0]).toMatch(/^PATH=/);
    expect(s.Linux!.Resources).toMatchObject({ Memory: { Limit: 268435456n }, Pids: { Limit: 10n } });
    const plain = defaultSpec({ args: ['true'], hostname: 'h' }).Linux!.Resources!;
    expect(plain.Memory).toBeUndefined();
    expect(plain.Pids).toBeUndefined();
  });
});

describe("the boot test's report", () => {
  const guest = 'PRETTY_NAME="Debian"\nID=debian\n';
  const ctr = 'NAME="c"\nID=osbuilder-container\n';
  const init = (o: Record<string, string> = {}) =>
    Object.entries({
      pid: '1',
      hostname: 'h',
      'memory.max': String(BOOT_TEST_LIMITS.memoryBytes),
      'pids.max': String(BOOT_TEST_LIMITS.pids),
      'os-release': ctr.trimEnd(),
      'guest-os-release': guest.trimEnd(),
      ready: '',
      stdin: BOOT_TEST_STDIN,
      ...o,
    })
      .map(([k, v]) => (v ? `@@${k}@@\n${v}\n` : `@@${k}@@\n`))
      .join('');
  const exec = '@@pid@@\n7\n@@init@@\nsh -c echo ... \n@@os-id@@\nID=osbuilder-container\n';
  const want = { hostname: 'h', guestOsRelease: guest, containerOsRelease: ctr };

  it('splits sections and accepts a container that behaves', () => {
    expect(sections('x\n@@a@@\n1\n2\n@@b@@\n')).toEqual({ a: '1\n2\n', b: '' });
    expect(verifyReports(init(), exec, { init: 3, exec: 0 }, want)).toMatchObject({
      initPid: 1,
      execPid: 7,
      memoryMax: 268435456,
      pidsMax: 128,
      guestOs: 'Debian',
      initStatus: 3,
    });
  });

  it.each([
    ['pid', { pid: '5' }, /init process pid in its pid namespace is "5", expected "1"/],
    ['hostname', { hostname: 'kata' }, /container hostname is "kata"/],
    ['memory.max', { 'memory.max': 'max' }, /memory\.max is "max", expected "268435456"/],
    ['pids.max', { 'pids.max': 'max' }, /pids\.max is "max", expected "128"/],
    ['guest os-release', { 'guest-os-release': 'ID=other' }, /guest's \/etc\/os-release/],
    ['container os-release', { 'os-release': guest.trimEnd() }, /container's \/etc\/os-release/],
    ['stdin', { stdin: '' }, /what the init read from stdin/],
  ])('names a wrong %s', (_what, override, message) => {
    expect(() => verifyReports(init(override), exec, { init: 3, exec: 0 }, want)).toThrow(message);
  });

  it('names wrong exit statuses and an exec outside the container', () => {
    expect(() => verifyReports(init(), exec, { init: 0, exec: 0 }, want)).toThrow(/init's exit status \(WaitProcess\) is 0, expected 3/);
    expect(() => verifyReports(init(), exec, { init: 3, exec: 1 }, want)).toThrow(/exec'd process's exit status is 1/);
    expect(() => verifyReports(init(), exec.replace('ID=osbuilder-container', 'ID=debian'), { init: 3, exec: 0 }, want)).toThrow(
      /exec'd process's view of \/etc\/os-release/,
    );
    expect(() => verifyReports(init(), exec.replace('sh -c', '/sbin/init'), { init: 3, exec: 0 }, want)).toThrow(/pid 1 as the exec'd process sees it/);
  });
});
