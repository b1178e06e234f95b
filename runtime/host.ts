/**
 * What the host offers for running guests: what `kata-runtime check` reports
 * (CPU vendor and virtualization flag, /dev/kvm, kvm/vhost modules, QEMU)
 * plus a real probe: a tiny guest (probe-guest.ts) started with accel=kvm and
 * accel=tcg under a short timeout. KVM counts as usable only when that guest
 * runs to the end. A KVM verdict is cached briefly (it can take seconds),
 * keyed by the host kernel, the QEMU version and /dev/kvm.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheRoot } from '../core/cache.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool, start, which } from '../core/exec.js';
import { sha256 } from '../core/hash.js';
import { debug } from '../core/log.js';
import { onInterrupt } from '../core/cleanup.js';
import { ARCHES, ARCH_FACTS, GUEST_ARCHES, hostArch, isGuestArch, parseArch, type Arch, type GuestArch } from '../core/arch.js';
import type { Accel } from './qemu.js';
import { PROBE_EXIT_STATUS, PROBE_MARKERS, probeGuestImage } from './probe-guest.js';
import { ownerTag } from '../core/owner.js';

export const KVM_MODULES = ['kvm', 'kvm_intel', 'kvm_amd', 'vhost', 'vhost_net', 'vhost_vsock'] as const;

export interface ProbeResult {
  accel: Accel;
  ok: boolean;
  /** Wall time of the probe VM. */
  ms: number;
  /** Serial output of the guest (markers S, L, M, C). */
  markers: string;
  detail: string;
  cached: boolean;
  at: string;
}

export interface HostReport {
  arch: GuestArch;
  kernel: string;
  cpu: { vendor: string; model: string; virtualization: 'vmx' | 'svm' | null };
  kvm: { device: boolean; accessible: boolean; modules: Record<string, boolean>; usable: boolean; probe: ProbeResult | null };
  vhostVsock: { device: boolean; accessible: boolean };
  qemu: { path: string | null; version: string | null };
  tcg: { available: boolean; probe: ProbeResult | null };
  accel: { auto: Accel; reason: string };
  /** The agent channel `boot --channel auto` picks here, as Kata's agent listens. */
  agentChannel: { auto: 'vsock' | 'serial'; reason: string };
}

/** vsock (port 1024) when the host can give the guest a vhost-vsock device, else virtio-serial. */
export function agentChannelFor(vhostVsock: { device: boolean; accessible: boolean }): HostReport['agentChannel'] {
  if (vhostVsock.accessible) return { auto: 'vsock', reason: '/dev/vhost-vsock is usable: vsock port 1024' };
  const why = vhostVsock.device ? '/dev/vhost-vsock is not accessible' : '/dev/vhost-vsock does not exist';
  return { auto: 'serial', reason: `${why}: virtio-serial port agent.channel.0` };
}

export async function vhostVsockState(): Promise<{ device: boolean; accessible: boolean }> {
  return canOpenRw('/dev/vhost-vsock');
}

export function hostGuestArch(): GuestArch {
  const a = hostArch();
  if (!isGuestArch(a))
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `osbuilder boot supports ${GUEST_ARCHES.join(' and ')} hosts, not ${a}`,
      `run on ${GUEST_ARCHES.join(' or ')}`,
    );
  return a;
}

/** A guest arch osbuilder can boot (another arch than the host's runs under TCG); undefined = the host's. */
export function parseGuestArch(name: string | undefined): GuestArch {
  if (name === undefined || name === '') return hostGuestArch();
  const a = parseArch(name);
  if (!isGuestArch(a))
    throw new OsbuilderError(
      'UNSUPPORTED_ARCH',
      `osbuilder boot cannot boot ${a} guests`,
      `use --arch ${GUEST_ARCHES.join(' or ')} (${ARCHES.filter((x) => !isGuestArch(x)).join(' and ')} are built, not booted)`,
    );
  return a;
}

/** Parses /proc/cpuinfo: vendor, model name, vmx/svm flag (pure). */
export function parseCpuinfo(text: string): HostReport['cpu'] {
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const flags = new Set(field('flags').split(/\s+/));
  return {
    vendor: field('vendor_id') || field('CPU implementer') || 'unknown',
    model: field('model name') || field('CPU part') || 'unknown',
    virtualization: flags.has('vmx') ? 'vmx' : flags.has('svm') ? 'svm' : null,
  };
}

/** Loaded or built-in modules: /proc/modules when readable, plus /sys/module/<name>. */
export async function moduleState(names: readonly string[], root = '/'): Promise<Record<string, boolean>> {
  const loaded = new Set<string>();
  const procModules = await readFile(join(root, 'proc/modules'), 'utf8').catch(() => '');
  for (const line of procModules.split('\n')) if (line) loaded.add(line.split(' ')[0]!);
  const out: Record<string, boolean> = {};
  for (const n of names) out[n] = loaded.has(n) || (await stat(join(root, 'sys/module', n)).catch(() => undefined)) !== undefined;
  return out;
}

async function canOpenRw(path: string): Promise<{ device: boolean; accessible: boolean }> {
  const device = (await stat(path).catch(() => undefined))?.isCharacterDevice() ?? false;
  const accessible =
    device &&
    (await access(path, constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    ));
  return { device, accessible };
}

export function qemuBinaryFor(arch: GuestArch): string {
  return ARCH_FACTS[arch].qemuSystem;
}

/** Finds QEMU (a path or a name on PATH) and its version; nulls when absent. */
export async function findQemu(pathOrName: string): Promise<{ path: string | null; version: string | null }> {
  let path: string | null = null;
  if (pathOrName.includes('/')) path = (await stat(pathOrName).catch(() => undefined))?.isFile() ? pathOrName : null;
  else path = (await which(pathOrName)) ?? null;
  if (!path) return { path: null, version: null };
  const r = await start(path, ['--version'], { reject: false, timeout: 30_000 });
  const version = /version\s+([^\s]+)/.exec(String(r.stdout))?.[1] ?? null;
  return { path, version };
}

/** The probe VM's argv (pure). */
export function probeArgv(accel: Accel, image: string, name: string): string[] {
  return [
    '-name',
    name,
    '-machine',
    `pc,accel=${accel}`,
    '-no-user-config',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-m',
    '64',
    '-chardev',
    'stdio,id=s0,signal=off',
    '-serial',
    'chardev:s0',
    '-device',
    'isa-debug-exit,iobase=0xf4,iosize=0x04',
    '-kernel',
    image,
  ];
}

/** What the markers say about how far the guest got (pure). */
export function describeProbe(
  accel: Accel,
  markers: string,
  outcome: { exitCode: number | null; timedOut: boolean; timeoutMs: number; stderr: string },
): { ok: boolean; detail: string } {
  const seen = PROBE_MARKERS.filter(([m]) => markers.includes(m));
  const ok = outcome.exitCode === PROBE_EXIT_STATUS && seen.length === PROBE_MARKERS.length;
  if (ok) return { ok, detail: `probe guest ran to the end under ${accel}` };
  const progress = seen.length ? `${seen.map(([, done]) => done).join(', ')}, but ` : '';
  if (outcome.timedOut) {
    const next = PROBE_MARKERS[seen.length]?.[2] ?? 'exit';
    return {
      ok,
      detail: `${progress}${seen.length ? '' : 'the guest '}did not ${next} within ${outcome.timeoutMs} ms: guest code does not run (or runs far too slowly) under ${accel}`,
    };
  }
  const err = outcome.stderr.trim().split('\n').filter(Boolean).slice(-1)[0];
  return { ok, detail: `${progress}QEMU exited with ${outcome.exitCode}${err ? `: ${err}` : ''}` };
}

/** Starts the probe guest; never faked: the verdict is what the guest did. */
export async function runProbe(qemu: string, accel: Accel, timeoutMs: number): Promise<ProbeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'osb-probe-'));
  let child: ReturnType<typeof start> | undefined;
  // Wait until QEMU is gone (and its scratch dir too): the process exits right after the handlers.
  const unregister = onInterrupt(async () => {
    child?.kill('SIGKILL');
    await child?.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  try {
    const image = join(dir, 'probe-guest.bin');
    await writeFile(image, probeGuestImage());
    const name = `osbuilder-probe-${accel}-${process.pid}`;
    const started = performance.now();
    child = start(qemu, probeArgv(accel, image, name), { reject: false, stdin: 'ignore', timeout: timeoutMs, killSignal: 'SIGKILL' });
    const r = await child;
    const ms = Math.round(performance.now() - started);
    const markers = String(r.stdout ?? '').replace(/\s+/g, '');
    const { ok, detail } = describeProbe(accel, markers, { exitCode: r.exitCode ?? null, timedOut: r.timedOut, timeoutMs, stderr: String(r.stderr ?? '') });
    debug(`probe ${accel}: ${detail} (${ms} ms, markers "${markers}")`);
    return { accel, ok, ms, markers, detail, cached: false, at: new Date().toISOString() };
  } finally {
    unregister();
    await rm(dir, { recursive: true, force: true });
  }
}

export const KVM_PROBE_TIMEOUT_MS = 8000;
export const TCG_PROBE_TIMEOUT_MS = 30000;
/** How long a KVM verdict is reused. */
export const PROBE_CACHE_TTL_MS = 10 * 60_000;

async function kvmProbeCached(qemu: string, qemuVersion: string, opts: { fresh?: boolean }): Promise<ProbeResult> {
  const kvmStat = await stat('/dev/kvm').catch(() => undefined);
  const key = sha256(JSON.stringify([release(), qemu, qemuVersion, kvmStat?.rdev ?? 0, kvmStat?.ctimeMs ?? 0])).slice(0, 24);
  const file = join(cacheRoot(), 'host-probe', `kvm-${key}.json`);
  if (!opts.fresh) {
    try {
      const saved = JSON.parse(await readFile(file, 'utf8')) as ProbeResult;
      if (Date.now() - Date.parse(saved.at) < PROBE_CACHE_TTL_MS) return { ...saved, cached: true };
    } catch {
      // no usable cached verdict
    }
  }
  const result = await runProbe(qemu, 'kvm', KVM_PROBE_TIMEOUT_MS);
  await mkdir(join(cacheRoot(), 'host-probe'), { recursive: true });
  await writeFile(`${file}.tmp-${ownerTag()}`, JSON.stringify(result));
  await rename(`${file}.tmp-${ownerTag()}`, file);
  return result;
}

export interface CheckOptions {
  qemu?: string;
  /** Also start the TCG probe (check does; boot --accel auto does not need it). */
  probeTcg?: boolean;
  /** Ignore a cached KVM verdict. */
  fresh?: boolean;
}

export async function checkHost(opts: CheckOptions = {}): Promise<HostReport> {
  const arch = hostGuestArch();
  const cpu = parseCpuinfo(await readFile('/proc/cpuinfo', 'utf8').catch(() => ''));
  const kvmDev = await canOpenRw('/dev/kvm');
  const modules = await moduleState(KVM_MODULES);
  const vhostVsock = await vhostVsockState();
  const qemu = await findQemu(opts.qemu ?? qemuBinaryFor(arch));
  // The probe guest is an x86 multiboot image; other hosts report the device only.
  const canProbe = qemu.path !== null && arch === 'x86_64';
  let kvmProbe: ProbeResult | null = null;
  if (canProbe && kvmDev.accessible) kvmProbe = await kvmProbeCached(qemu.path!, qemu.version ?? '', { fresh: opts.fresh ?? false });
  let tcgProbe: ProbeResult | null = null;
  if (canProbe && opts.probeTcg) tcgProbe = await runProbe(qemu.path!, 'tcg', TCG_PROBE_TIMEOUT_MS);
  const kvmUsable = kvmDev.accessible && (kvmProbe ? kvmProbe.ok : arch !== 'x86_64' && qemu.path !== null);
  const tcgAvailable = qemu.path !== null && (tcgProbe ? tcgProbe.ok : true);
  let reason: string;
  if (kvmUsable) reason = kvmProbe ? 'KVM runs guests (probe passed)' : '/dev/kvm is accessible (no probe guest for this arch)';
  else if (!kvmDev.device) reason = '/dev/kvm does not exist';
  else if (!kvmDev.accessible) reason = '/dev/kvm is not accessible to this user';
  else if (!qemu.path) reason = 'QEMU is not installed';
  else reason = `KVM is present but not usable: ${kvmProbe?.detail ?? 'not probed'}`;
  return {
    arch,
    kernel: release(),
    cpu,
    kvm: { device: kvmDev.device, accessible: kvmDev.accessible, modules, usable: kvmUsable, probe: kvmProbe },
    vhostVsock,
    qemu,
    tcg: { available: tcgAvailable, probe: tcgProbe },
    accel: { auto: kvmUsable ? 'kvm' : 'tcg', reason },
    agentChannel: agentChannelFor(vhostVsock),
  };
}

/** --accel auto|kvm|tcg to a concrete accelerator, with the reason. */
export async function resolveAccel(requested: string, qemu: string, arch: GuestArch = hostGuestArch()): Promise<{ accel: Accel; reason: string }> {
  if (requested === 'tcg') return { accel: 'tcg', reason: 'requested' };
  const foreign = arch !== hostGuestArch() ? `an ${arch} guest on this ${hostGuestArch()} host` : undefined;
  if (requested === 'kvm' && foreign) throw new OsbuilderError('UNSUPPORTED', `--accel kvm: KVM cannot run ${foreign}`, 'use --accel tcg or auto');
  if (requested === 'auto' && foreign) return { accel: 'tcg', reason: `${foreign}: emulated (TCG)` };
  if (requested === 'kvm') {
    const dev = await canOpenRw('/dev/kvm');
    if (!dev.accessible) {
      throw new OsbuilderError(
        'UNSUPPORTED',
        `--accel kvm: ${dev.device ? '/dev/kvm is not accessible to this user' : '/dev/kvm does not exist'}`,
        'use --accel tcg (slower, always works) or --accel auto',
      );
    }
    return { accel: 'kvm', reason: 'requested' };
  }
  if (requested !== 'auto') {
    throw new OsbuilderError('USAGE', `unknown accelerator ${JSON.stringify(requested)}`, 'use --accel auto, kvm or tcg');
  }
  const report = await checkHost({ qemu });
  return { accel: report.accel.auto, reason: report.accel.reason };
}
