/**
 * OCI runtime spec (a bundle's config.json, as runc and crun read it) to the
 * protobuf Spec Kata's agent takes, checked field by field with errors that
 * name the JSON path. Pure: no files are read here.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { OsbuilderError } from '../core/errors.js';
import { MountSchema, RootSchema, SpecSchema, type Mount, type Spec } from './gen/oci_pb.js';

export type { Spec };
type SpecInit = MessageInitShape<typeof SpecSchema>;
type Json = Record<string, unknown>;

class Reader {
  constructor(readonly file: string) {}

  fail(path: string, what: string): never {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `${this.file}: ${path} ${what}`,
      "fix the bundle's config.json (see the OCI runtime spec, or generate one with `runc spec`)",
    );
  }

  obj(v: unknown, path: string, optional = true): Json | undefined {
    if (v === undefined || v === null) return optional ? undefined : this.fail(path, 'is missing');
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'must be an object');
    return v as Json;
  }

  str(v: unknown, path: string): string {
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') this.fail(path, 'must be a string');
    return v;
  }

  bool(v: unknown, path: string): boolean {
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') this.fail(path, 'must be true or false');
    return v;
  }

  int(v: unknown, path: string, min: number, max: number): number {
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(path, `must be a whole number between ${min} and ${max}`);
    return v;
  }

  big(v: unknown, path: string, signed = true): bigint {
    if (v === undefined || v === null) return 0n;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || (!signed && v < 0))
      this.fail(path, signed ? 'must be a whole number' : 'must be a whole number >= 0');
    return BigInt(v);
  }

  strs(v: unknown, path: string): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(path, 'must be an array of strings');
    return v as string[];
  }

  list(v: unknown, path: string): Json[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, 'must be an array');
    return v.map((x, i) => this.obj(x, `${path}[${i}]`, false)!);
  }

  map(v: unknown, path: string): Record<string, string> {
    const o = this.obj(v, path) ?? {};
    for (const [k, x] of Object.entries(o)) if (typeof x !== 'string') this.fail(`${path}.${k}`, 'must be a string');
    return o as Record<string, string>;
  }
}

const U32 = 0xffffffff;

function processFrom(r: Reader, p: Json): NonNullable<SpecInit['Process']> {
  const user = r.obj(p.user, 'process.user');
  const caps = r.obj(p.capabilities, 'process.capabilities');
  const box = r.obj(p.consoleSize, 'process.consoleSize');
  return {
    Terminal: r.bool(p.terminal, 'process.terminal'),
    ...(box
      ? { ConsoleSize: { Height: r.int(box.height, 'process.consoleSize.height', 0, U32), Width: r.int(box.width, 'process.consoleSize.width', 0, U32) } }
      : {}),
    User: {
      UID: r.int(user?.uid, 'process.user.uid', 0, U32),
      GID: r.int(user?.gid, 'process.user.gid', 0, U32),
      AdditionalGids: (Array.isArray(user?.additionalGids) ? user.additionalGids : []).map((g, i) => r.int(g, `process.user.additionalGids[${i}]`, 0, U32)),
      Username: r.str(user?.username, 'process.user.username'),
    },
    Args: r.strs(p.args, 'process.args'),
    Env: r.strs(p.env, 'process.env'),
    Cwd: r.str(p.cwd, 'process.cwd'),
    ...(caps
      ? {
          Capabilities: {
            Bounding: r.strs(caps.bounding, 'process.capabilities.bounding'),
            Effective: r.strs(caps.effective, 'process.capabilities.effective'),
            Inheritable: r.strs(caps.inheritable, 'process.capabilities.inheritable'),
            Permitted: r.strs(caps.permitted, 'process.capabilities.permitted'),
            Ambient: r.strs(caps.ambient, 'process.capabilities.ambient'),
          },
        }
      : {}),
    Rlimits: r.list(p.rlimits, 'process.rlimits').map((l, i) => ({
      Type: r.str(l.type, `process.rlimits[${i}].type`),
      Hard: r.big(l.hard, `process.rlimits[${i}].hard`, false),
      Soft: r.big(l.soft, `process.rlimits[${i}].soft`, false),
    })),
    NoNewPrivileges: r.bool(p.noNewPrivileges, 'process.noNewPrivileges'),
    ApparmorProfile: r.str(p.apparmorProfile, 'process.apparmorProfile'),
    OOMScoreAdj: r.big(p.oomScoreAdj, 'process.oomScoreAdj'),
    SelinuxLabel: r.str(p.selinuxLabel, 'process.selinuxLabel'),
  };
}

function resourcesFrom(r: Reader, res: Json): NonNullable<NonNullable<SpecInit['Linux']>['Resources']> {
  const at = 'linux.resources';
  const mem = r.obj(res.memory, `${at}.memory`);
  const cpu = r.obj(res.cpu, `${at}.cpu`);
  const pids = r.obj(res.pids, `${at}.pids`);
  return {
    Devices: r.list(res.devices, `${at}.devices`).map((d, i) => ({
      Allow: r.bool(d.allow, `${at}.devices[${i}].allow`),
      Type: r.str(d.type, `${at}.devices[${i}].type`),
      Major: r.big(d.major ?? -1, `${at}.devices[${i}].major`),
      Minor: r.big(d.minor ?? -1, `${at}.devices[${i}].minor`),
      Access: r.str(d.access, `${at}.devices[${i}].access`),
    })),
    ...(mem
      ? {
          Memory: {
            Limit: r.big(mem.limit, `${at}.memory.limit`),
            Reservation: r.big(mem.reservation, `${at}.memory.reservation`),
            Swap: r.big(mem.swap, `${at}.memory.swap`),
            Kernel: r.big(mem.kernel, `${at}.memory.kernel`),
            KernelTCP: r.big(mem.kernelTCP, `${at}.memory.kernelTCP`),
            Swappiness: r.big(mem.swappiness, `${at}.memory.swappiness`, false),
            DisableOOMKiller: r.bool(mem.disableOOMKiller, `${at}.memory.disableOOMKiller`),
          },
        }
      : {}),
    ...(cpu
      ? {
          CPU: {
            Shares: r.big(cpu.shares, `${at}.cpu.shares`, false),
            Quota: r.big(cpu.quota, `${at}.cpu.quota`),
            Period: r.big(cpu.period, `${at}.cpu.period`, false),
            RealtimeRuntime: r.big(cpu.realtimeRuntime, `${at}.cpu.realtimeRuntime`),
            RealtimePeriod: r.big(cpu.realtimePeriod, `${at}.cpu.realtimePeriod`, false),
            Cpus: r.str(cpu.cpus, `${at}.cpu.cpus`),
            Mems: r.str(cpu.mems, `${at}.cpu.mems`),
          },
        }
      : {}),
    ...(pids ? { Pids: { Limit: r.big(pids.limit, `${at}.pids.limit`) } } : {}),
  };
}

function linuxFrom(r: Reader, l: Json): NonNullable<SpecInit['Linux']> {
  const ids = (v: unknown, path: string) =>
    r.list(v, path).map((m, i) => ({
      ContainerID: r.int(m.containerID, `${path}[${i}].containerID`, 0, U32),
      HostID: r.int(m.hostID, `${path}[${i}].hostID`, 0, U32),
      Size: r.int(m.size, `${path}[${i}].size`, 0, U32),
    }));
  const res = r.obj(l.resources, 'linux.resources');
  return {
    UIDMappings: ids(l.uidMappings, 'linux.uidMappings'),
    GIDMappings: ids(l.gidMappings, 'linux.gidMappings'),
    Sysctl: r.map(l.sysctl, 'linux.sysctl'),
    ...(res ? { Resources: resourcesFrom(r, res) } : {}),
    CgroupsPath: r.str(l.cgroupsPath, 'linux.cgroupsPath'),
    Namespaces: r
      .list(l.namespaces, 'linux.namespaces')
      .map((n, i) => ({ Type: r.str(n.type, `linux.namespaces[${i}].type`), Path: r.str(n.path, `linux.namespaces[${i}].path`) })),
    Devices: r.list(l.devices, 'linux.devices').map((d, i) => {
      const at = `linux.devices[${i}]`;
      return {
        Path: r.str(d.path, `${at}.path`),
        Type: r.str(d.type, `${at}.type`),
        Major: r.big(d.major, `${at}.major`),
        Minor: r.big(d.minor, `${at}.minor`),
        FileMode: r.int(d.fileMode, `${at}.fileMode`, 0, 0o7777),
        UID: r.int(d.uid, `${at}.uid`, 0, U32),
        GID: r.int(d.gid, `${at}.gid`, 0, U32),
      };
    }),
    RootfsPropagation: r.str(l.rootfsPropagation, 'linux.rootfsPropagation'),
    MaskedPaths: r.strs(l.maskedPaths, 'linux.maskedPaths'),
    ReadonlyPaths: r.strs(l.readonlyPaths, 'linux.readonlyPaths'),
    MountLabel: r.str(l.mountLabel, 'linux.mountLabel'),
  };
}

/** A parsed config.json as the protobuf Spec; Root.Path as written (the caller shares the rootfs). */
export function specFromConfig(config: unknown, file: string): Spec {
  const r = new Reader(file);
  const c = r.obj(config, '(the document)', false)!;
  const p = r.obj(c.process, 'process', false)!;
  const root = r.obj(c.root, 'root', false)!;
  const linux = r.obj(c.linux, 'linux');
  const spec: SpecInit = {
    Version: r.str(c.ociVersion, 'ociVersion'),
    Process: processFrom(r, p),
    Root: { Path: r.str(root.path, 'root.path'), Readonly: r.bool(root.readonly, 'root.readonly') },
    Hostname: r.str(c.hostname, 'hostname'),
    Mounts: r.list(c.mounts, 'mounts').map((m, i) => ({
      destination: r.str(m.destination, `mounts[${i}].destination`),
      source: r.str(m.source, `mounts[${i}].source`),
      type: r.str(m.type, `mounts[${i}].type`),
      options: r.strs(m.options, `mounts[${i}].options`),
    })),
    Annotations: r.map(c.annotations, 'annotations'),
    ...(linux ? { Linux: linuxFrom(r, linux) } : {}),
  };
  if (!spec.Root!.Path) r.fail('root.path', 'is missing');
  return create(SpecSchema, spec);
}

/** Parses config.json text; a syntax error names the file and where. */
export function parseConfigJson(text: string, file: string): Spec {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new OsbuilderError('INPUT_INVALID', `${file} is not valid JSON: ${(err as Error).message}`, "fix the bundle's config.json");
  }
  return specFromConfig(doc, file);
}

// ---------------------------------------------------------------- the default spec

/** containerd's default capability set (what a `ctr run` or CRI container gets). */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'];

/** runc's default mounts (`runc spec`), as the agent mounts them inside the container. */
export const DEFAULT_MOUNTS = [
  { destination: '/proc', type: 'proc', source: 'proc', options: [] },
  { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
];

export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface DefaultSpecInput {
  args: string[];
  hostname: string;
  env?: string[];
  cwd?: string;
  /** Bytes; 0 = none. */
  memoryLimit?: number;
  /** 0 = none. */
  pidsLimit?: number;
}

/** What `runc spec` would write, for a command in a rootfs (Root.Path filled in by the caller). */
export function defaultSpec(input: DefaultSpecInput): Spec {
  const caps = [...DEFAULT_CAPABILITIES];
  const resources = {
    ...(input.memoryLimit ? { Memory: { Limit: BigInt(input.memoryLimit) } } : {}),
    ...(input.pidsLimit ? { Pids: { Limit: BigInt(input.pidsLimit) } } : {}),
  };
  return create(SpecSchema, {
    Version: '1.1.0',
    Process: {
      Terminal: false,
      User: { UID: 0, GID: 0 },
      Args: input.args,
      Env: [...DEFAULT_ENV, ...(input.env ?? [])],
      Cwd: input.cwd ?? '/',
      Capabilities: { Bounding: caps, Effective: caps, Permitted: caps },
      Rlimits: [{ Type: 'RLIMIT_NOFILE', Hard: 1024n, Soft: 1024n }],
      NoNewPrivileges: true,
    },
    Root: { Path: '', Readonly: false },
    Hostname: input.hostname,
    Mounts: DEFAULT_MOUNTS.map((m) => ({ ...m, options: [...m.options] })),
    Linux: {
      Resources: resources,
      Namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((Type) => ({ Type })),
      MaskedPaths: DEFAULT_MASKED_PATHS,
      ReadonlyPaths: DEFAULT_READONLY_PATHS,
    },
  });
}

/** A bind mount (rbind), read-only unless asked otherwise. */
export function bindMount(source: string, destination: string, readonly = true): Mount {
  return create(MountSchema, { destination, source, type: 'bind', options: readonly ? ['rbind', 'ro'] : ['rbind'] });
}

/** Points the spec at a rootfs (a host path: the runtime shares it). */
export function setRoot(spec: Spec, path: string, readonly: boolean): void {
  spec.Root = create(RootSchema, { Path: path, Readonly: readonly });
}

export function tmpfsMount(destination: string): Mount {
  return create(MountSchema, { destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
}
