/**
 * The install tree of `osbuilder build`, as Kata's release lays it out:
 *   <prefix>/usr/share/kata-containers/      artifacts, .container / kata-containers*.img links,
 *                                            SHA256SUMS, manifest.json
 *   <prefix>/usr/share/defaults/kata-containers/configuration-qemu.toml (+ -nvidia-gpu)
 * The entries are planned as plain data (pipeline/install-plan.ts); writeInstall()
 * stages them beside the destination and switches them in (pipeline/switch.ts).
 */
import { copyFile, constants, link, mkdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { sha256 } from '../core/hash.js';
import { interruptedBy, onInterrupt } from '../core/cleanup.js';
import { interruptedError } from '../core/errors.js';
import { firstDifference, switchTrees, treeDigest, type SwitchOutcome } from './switch.js';
import { fsClock, stampFile, type Stamped } from '../core/stamp.js';
import { readRecord, writeRecord } from './record.js';
import { ownerTag } from '../core/owner.js';
import { removeDeadTemps } from '../core/atomic.js';
import type { Arch } from '../core/arch.js';
import type { BuiltFsType } from '../core/vocab.js';

export type InstallEntry =
  /** `carried`: already in the install (hard-linked into the staged tree, not copied). */
  | { kind: 'file'; path: string; from: string; sha256: string; size: number; carried?: boolean }
  | { kind: 'text'; path: string; content: string }
  | { kind: 'link'; path: string; target: string };

export const SHARE = 'usr/share/kata-containers';
export const DEFAULTS = 'usr/share/defaults/kata-containers';

/**
 * What Kata's runtime build writes for an arch besides path and machine type
 * (src/runtime/arch/<arch>-options.mk); firmware from Debian's qemu-efi-aarch64,
 * with the AAVMF file names Kata uses. Our runtime reads kernel_params only.
 */
export const KATA_ARCH_OPTIONS: Partial<Record<Arch, { kernelParams: string; firmware: string; firmwareVolume: string; cpuFeatures: string }>> = {
  aarch64: {
    kernelParams: 'cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1',
    firmware: '/usr/share/AAVMF/AAVMF_CODE.fd',
    firmwareVolume: '/usr/share/AAVMF/AAVMF_VARS.fd',
    cpuFeatures: 'pmu=off',
  },
};

export interface QemuConfigInput {
  /** The guest arch; default x86_64. */
  arch?: Arch;
  qemuPath: string;
  machineType: string;
  kernel: string;
  image?: string;
  initrd?: string;
  /** The image's kernel_verity_params when it is a dm-verity image. */
  kernelVerityParams?: string;
  /** The image's filesystem (Kata's rootfs_type; written when not ext4, the runtime's default). */
  rootfsType?: BuiltFsType;
  /** The image has no DAX header (--no-dax): boot it over virtio-blk, not nvdimm. */
  disableImageNvdimm?: boolean;
  /** The GPU kernel's configuration: a root port to hot-plug the GPU into, as Kata's GPU passthrough guide sets. */
  gpu?: boolean;
  /** agent.kata.kernel_modules entries ("name param=value …"); none when absent. */
  kernelModules?: string[];
  toolVersion: string;
}

/**
 * configuration-qemu.toml with the keys our runtime reads (and Kata's names
 * for them). As in Kata, image and initrd exclude each other: the image wins
 * and the initrd line is left commented for the user to swap.
 */
export function renderQemuConfig(c: QemuConfigInput): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    `# Kata Containers QEMU configuration, written by osbuilder ${c.toolVersion}.`,
    '# Boot it with: osbuilder boot --config <this file> -- <command>',
    '',
    '[hypervisor.qemu]',
    `path = ${q(c.qemuPath)}`,
    `kernel = ${q(c.kernel)}`,
  ];
  if (c.image) lines.push(`image = ${q(c.image)}`);
  if (c.initrd) lines.push(`${c.image ? '# ' : ''}initrd = ${q(c.initrd)}`);
  const opts = KATA_ARCH_OPTIONS[c.arch ?? 'x86_64'];
  lines.push(
    `machine_type = ${q(c.machineType)}`,
    `kernel_params = ${q(opts?.kernelParams ?? '')}`,
    ...(opts ? [`firmware = ${q(opts.firmware)}`, `firmware_volume = ${q(opts.firmwareVolume)}`, `cpu_features = ${q(opts.cpuFeatures)}`] : []),
    ...(c.image && c.kernelVerityParams ? [`kernel_verity_params = ${q(c.kernelVerityParams)}`] : []),
    ...(c.image && c.rootfsType && c.rootfsType !== 'ext4' ? [`rootfs_type = ${q(c.rootfsType)}`] : []),
    'default_vcpus = 1',
    'default_memory = 2048',
    'block_device_driver = "virtio-blk"',
    `disable_image_nvdimm = ${!!(c.image && c.disableImageNvdimm)}`,
    'shared_fs = "virtio-9p"',
    'msize_9p = 8192',
    ...(c.gpu
      ? [
          '# GPU passthrough: hot-plug into a PCIe root port with room for large 64-bit BARs (Kata 2.x and 3.x keys).',
          'hotplug_vfio_on_root_bus = true',
          'hot_plug_vfio = "root-port"',
          'pcie_root_port = 1',
        ]
      : []),
    'entropy_source = "/dev/urandom"',
    'enable_debug = false',
    '',
    '[agent.kata]',
    'enable_debug = false',
    'dial_timeout = 45',
    ...(c.kernelModules?.length ? [`kernel_modules = [${c.kernelModules.map(q).join(', ')}]`] : []),
    '',
  );
  return lines.join('\n');
}

/** sha256sum-compatible lines for every file entry (paths relative to the prefix), sorted. */
export function renderSha256Sums(entries: InstallEntry[]): string {
  const lines = entries
    .flatMap((e) => (e.kind === 'file' ? [[e.path, e.sha256]] : e.kind === 'text' ? [[e.path, sha256(e.content)]] : []))
    .sort(([a], [b]) => (a! < b! ? -1 : 1))
    .map(([p, h]) => `${h}  ${p}`);
  return `${lines.join('\n')}\n`;
}

/** The digest switchTrees compares, computed from the plan without writing anything. */
export function plannedDigest(entries: InstallEntry[], under: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of entries) {
    if (!e.path.startsWith(`${under}/`)) continue;
    const rel = relative(under, e.path);
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) out.set(parts.slice(0, i).join('/'), 'dir');
    out.set(rel, e.kind === 'link' ? `link:${e.target}` : `file:${e.kind === 'file' ? e.sha256 : sha256(e.content)}`);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Copies a file, as a reflink where the filesystem can. */
async function copyIn(from: string, to: string): Promise<void> {
  await copyFile(from, to, constants.COPYFILE_FICLONE);
}

/**
 * Whether the tree at `dest` is exactly `planned`. Files the record vouches
 * for are not hashed; what had to be hashed is recorded for next time.
 */
async function holdsPlanned(dest: string, planned: Map<string, string>): Promise<boolean> {
  const known = await readRecord(dest);
  const clock = await fsClock(dest).catch(() => undefined);
  if (clock === undefined) return false;
  const seen = new Map<string, Stamped>();
  const digest = await treeDigest(dest, { known, seen }).catch(() => undefined);
  if (!digest || firstDifference(digest, planned) !== undefined) return false;
  if ([...seen].some(([rel, f]) => known.get(rel)?.stamp !== f.stamp)) await writeRecord(dest, seen, clock);
  return true;
}

/**
 * Stages every entry beside its destination directory and switches the trees
 * in. An install identical to the plan is left alone without staging. The
 * files staged here are recorded with the sha256 of what was copied in.
 */
export async function writeInstall(prefix: string, entries: InstallEntry[], force: boolean): Promise<SwitchOutcome> {
  const roots = [SHARE, DEFAULTS];
  const held = await Promise.all(roots.map((r) => holdsPlanned(join(prefix, r), plannedDigest(entries, r))));
  if (held.every(Boolean)) return 'unchanged';

  const staged = roots.map((r) => join(prefix, dirname(r), `.${r.split('/').pop()}.staged-${ownerTag()}`));
  const cleanup = () => Promise.all(staged.map((s) => rm(s, { recursive: true, force: true }))).then(() => undefined);
  // An interrupt lets the entry being written finish (else it lands after the removal), then removes the staged trees.
  let writing: Promise<unknown> = Promise.resolve();
  const unregister = onInterrupt(async () => {
    await writing.catch(() => undefined);
    await cleanup();
  });
  const notInterrupted = () => {
    const signal = interruptedBy();
    if (signal) throw interruptedError(signal);
  };
  try {
    for (const r of roots) await removeDeadTemps(join(prefix, dirname(r)), `.${r.split('/').pop()}.`);
    for (const s of staged) await mkdir(s, { recursive: true });
    for (const e of entries) {
      notInterrupted();
      const i = roots.findIndex((r) => e.path.startsWith(`${r}/`));
      writing = stageEntry(e, join(staged[i]!, relative(roots[i]!, e.path)));
      await writing;
    }
    // Stamps after every write (the renames below keep them): a file still changing in this tick is left unrecorded.
    const clocks = await Promise.all(staged.map((s) => fsClock(s)));
    const stamps = await Promise.all(roots.map((r, i) => stampStaged(entries, r, staged[i]!)));
    notInterrupted();
    const outcome = await switchTrees(
      roots.map((r, i) => ({ staged: staged[i]!, dest: join(prefix, r) })),
      force,
    );
    if (outcome !== 'unchanged') for (const [i, r] of roots.entries()) await writeRecord(join(prefix, r), stamps[i]!, clocks[i]!);
    return outcome;
  } finally {
    await cleanup();
    unregister();
  }
}

async function stageEntry(e: InstallEntry, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  if (e.kind === 'file') await (e.carried ? link(e.from, dest) : copyIn(e.from, dest));
  else if (e.kind === 'text') await writeFile(dest, e.content);
  else await symlink(e.target, dest);
}

/** The stamps of the files staged for `root`, with the sha256 of what was put there. */
async function stampStaged(entries: InstallEntry[], root: string, staged: string): Promise<Map<string, Stamped>> {
  const stamps = new Map<string, Stamped>();
  for (const e of entries) {
    if (e.kind === 'link' || !e.path.startsWith(`${root}/`)) continue;
    const rel = relative(root, e.path);
    stamps.set(rel, { ...(await stampFile(join(staged, rel))), sha256: e.kind === 'file' ? e.sha256 : sha256(e.content) });
  }
  return stamps;
}

/** Files every build regenerates for the whole install, never carried over. */
function regenerated(path: string): boolean {
  return (
    path === `${SHARE}/manifest.json` || path === `${SHARE}/SHA256SUMS` || /^usr\/share\/defaults\/kata-containers\/configuration-qemu[\w-]*\.toml$/.test(path)
  );
}

/** What an existing install holds that `planned` does not produce: a partial build keeps it. */
export async function carriedEntries(prefix: string, planned: InstallEntry[]): Promise<InstallEntry[]> {
  const paths = new Set(planned.map((e) => e.path));
  const out: InstallEntry[] = [];
  for (const root of [SHARE, DEFAULTS]) {
    const dest = join(prefix, root);
    const digest = await treeDigest(dest, { known: await readRecord(dest) }).catch(() => undefined);
    for (const [rel, v] of digest ?? []) {
      const path = `${root}/${rel}`;
      if (v === 'dir' || paths.has(path) || regenerated(path)) continue;
      if (v.startsWith('link:')) out.push({ kind: 'link', path, target: v.slice('link:'.length) });
      else
        out.push({ kind: 'file', path, from: join(prefix, path), sha256: v.slice('file:'.length), size: (await stat(join(prefix, path))).size, carried: true });
    }
  }
  return out;
}

/** Resolves a symlink in an install (for boot tests against what is already installed). */
export async function installedTarget(prefix: string, link: string): Promise<string | undefined> {
  const p = join(prefix, SHARE, link);
  const t = await readlink(p).catch(() => undefined);
  return t === undefined ? undefined : join(dirname(p), t);
}
