/**
 * What `osbuilder build` installs, planned as entries (pipeline/install.ts
 * writes them): the artifacts built here, what a partial build keeps of the
 * existing install, configuration-qemu.toml for the whole install,
 * manifest.json and SHA256SUMS.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseVerityParams } from '../core/verity-params.js';
import { TOOL_VERSION } from '../core/version.js';
import { FS_TYPES } from '../core/vocab.js';
import { DEFAULTS, SHARE, carriedEntries, renderQemuConfig, renderSha256Sums, type InstallEntry, type QemuConfigInput } from './install.js';
import { buildManifest, type Manifest } from './manifest.js';
import type { BuildPlan } from './plan.js';
import type { BootTest } from './boot-test.js';
import { resolvedImage, type KernelArtifact, type RootfsArtifact } from './stages.js';

const ROOT_LINKS = { image: 'kata-containers.img', initrd: 'kata-containers-initrd.img' } as const;
/** A verity image's kernel_verity_params, installed as Kata's build_image.sh does for the base image (empty variant). */
export const VERITY_PARAMS_FILE = 'root_hash_.txt';

/** x86_64 guests boot the compressed image; QEMU's -kernel takes it on every machine type. */
function kernelLink(variant: KernelArtifact['variant']): string {
  return variant === 'nvidia' ? 'vmlinuz-nvidia-gpu.container' : 'vmlinuz.container';
}

/** The headers tarball and the kernel's own .deb packages of a GPU kernel. */
function isKernelDevel(name: string): boolean {
  return name.startsWith('linux-headers-') || name.endsWith('.deb');
}

/** Every artifact file and link this build installs (pure). */
export function artifactEntries(rootfs: RootfsArtifact[], kernels: KernelArtifact[]): InstallEntry[] {
  const out: InstallEntry[] = [];
  const share = (name: string) => `${SHARE}/${name}`;
  for (const r of rootfs) {
    out.push({ kind: 'file', path: share(r.fileName), from: r.path, sha256: r.sha256, size: r.size });
    out.push({ kind: 'link', path: share(ROOT_LINKS[r.role]), target: r.fileName });
    if (r.kernelVerityParams) out.push({ kind: 'text', path: share(VERITY_PARAMS_FILE), content: `${r.kernelVerityParams}\n` });
  }
  for (const k of kernels) {
    for (const f of k.files) {
      const dest = isKernelDevel(f.name) ? `kernel-devel/${f.name}` : f.name;
      out.push({ kind: 'file', path: share(dest), from: f.path, sha256: f.sha256, size: f.size });
    }
    out.push({ kind: 'link', path: share(k.names.vmlinuzLink), target: k.names.vmlinuz });
    out.push({ kind: 'link', path: share(k.names.vmlinuxLink), target: k.names.vmlinux });
  }
  return out;
}

export type ImageBoot = Pick<QemuConfigInput, 'rootfsType' | 'disableImageNvdimm'>;

/** How the runtime boots the image this plan builds: its filesystem, and nvdimm only with the DAX header. */
export function imageBoot(plan: Pick<BuildPlan, 'imageOptions'>): ImageBoot {
  const o = resolvedImage(plan);
  return { rootfsType: o.fsType, disableImageNvdimm: !o.dax };
}

/**
 * configuration-qemu.toml (and -nvidia-gpu) for what the install will hold,
 * built here or kept from before (pure): one per installed kernel link, with
 * the installed image (else the initrd).
 */
export function configEntries(
  plan: BuildPlan,
  installed: InstallEntry[],
  qemuPath: string,
  machineType: string,
  kernelVerityParams?: string,
  boot: ImageBoot = {},
): InstallEntry[] {
  const has = (name: string) => installed.some((e) => e.path === `${SHARE}/${name}`);
  const abs = (name: string) => join(plan.shareDir, name);
  const image = has(ROOT_LINKS.image) ? abs(ROOT_LINKS.image) : undefined;
  const initrd = has(ROOT_LINKS.initrd) ? abs(ROOT_LINKS.initrd) : undefined;
  if (!image && !initrd) return [];
  const variants = (['default', 'nvidia'] as const).filter((v) => has(kernelLink(v)));
  return (variants.length ? variants : (['default'] as const)).map((variant) => ({
    kind: 'text' as const,
    path: `${DEFAULTS}/${variant === 'nvidia' ? 'configuration-qemu-nvidia-gpu.toml' : 'configuration-qemu.toml'}`,
    content: renderQemuConfig({
      arch: plan.arch,
      qemuPath,
      machineType,
      kernel: abs(kernelLink(variant)),
      ...(image ? { image } : {}),
      ...(initrd ? { initrd } : {}),
      ...(image && kernelVerityParams ? { kernelVerityParams } : {}),
      ...boot,
      ...(variant === 'nvidia' ? { gpu: true } : {}),
      toolVersion: TOOL_VERSION,
    }),
  }));
}

// ---------------------------------------------------------------- what a partial build keeps

export type RootfsRecord = Manifest['rootfs'][number];

/** The image/initrd records of the existing install's manifest.json, built or kept there (none when it is missing or unreadable). */
async function installedRecords(prefix: string): Promise<RootfsRecord[]> {
  const text = await readFile(join(prefix, SHARE, 'manifest.json'), 'utf8').catch(() => '');
  let m: Partial<Manifest> = {};
  try {
    m = JSON.parse(text) as Partial<Manifest>;
  } catch {
    // Not osbuilder's manifest: it records nothing.
  }
  return [m.rootfs, m.keptRootfs].flatMap((list) => (Array.isArray(list) ? list : []));
}

/** The records of the image/initrd files kept: same file name and sha256 (pure). */
export function keptRecords(records: RootfsRecord[], carried: InstallEntry[]): RootfsRecord[] {
  return records.filter((r) => carried.some((c) => c.kind === 'file' && c.path === `${SHARE}/${r.file}` && c.sha256 === r.sha256));
}

/** How the runtime boots an image, from the image options its record keys (inputs.artifact, e.g. "erofs,no-dax,mbr"). */
export function recordedImageBoot(record: RootfsRecord): ImageBoot | undefined {
  const parts = String(record.inputs?.artifact ?? '').split(',');
  const fsType = parts.find((p) => (FS_TYPES as readonly string[]).includes(p));
  const dax = parts.includes('dax') ? true : parts.includes('no-dax') ? false : undefined;
  if ((fsType !== 'ext4' && fsType !== 'erofs') || dax === undefined) return undefined;
  return { rootfsType: fsType, disableImageNvdimm: !dax };
}

/**
 * How the runtime boots the kept image, as its record says (pure); without a
 * record, the defaults (ext4 over nvdimm) and a note. Undefined: no image is kept.
 */
export function keptImageBoot(records: RootfsRecord[], carried: InstallEntry[]): { boot: ImageBoot; note?: string } | undefined {
  const link = carried.find((c) => c.path === `${SHARE}/${ROOT_LINKS.image}`);
  if (link?.kind !== 'link') return undefined;
  const record = records.find((r) => r.role === 'image' && r.file === link.target);
  const boot = record && recordedImageBoot(record);
  if (boot) return { boot };
  return { boot: {}, note: `manifest.json records no image options for the kept ${link.target}: configuration-qemu.toml boots it as ext4 over nvdimm` };
}

/** The kernel_verity_params of a verity image kept from the existing install, checked as the runtime will. */
async function carriedVerityParams(carried: InstallEntry[]): Promise<string | undefined> {
  const file = carried.find((c) => c.path === `${SHARE}/${VERITY_PARAMS_FILE}`);
  if (file?.kind !== 'file') return undefined;
  const text = (await readFile(file.from, 'utf8')).trim();
  parseVerityParams(text, `${file.from} (kept from the existing install)`);
  return text;
}

/** What the install keeps of the existing one: nothing for a full build; never the verity parameters of a replaced image. */
async function keptEntries(plan: BuildPlan, entries: InstallEntry[], builtImage: boolean): Promise<InstallEntry[]> {
  if (plan.rootfs.length === 2 && plan.kernels.length > 0) return [];
  // The verity parameters belong to the image they were made with: a new image replaces them (or has none).
  return (await carriedEntries(plan.prefix, entries)).filter((c) => !(builtImage && c.path === `${SHARE}/${VERITY_PARAMS_FILE}`));
}

// ---------------------------------------------------------------- the whole install

export interface BuiltRun {
  rootfs: RootfsArtifact[];
  kernels: KernelArtifact[];
  bootTests: BootTest[];
  agent: { source: string; sha256: string };
  sourceDateEpoch: number | undefined;
  qemu: { path: string; machineType: string };
}

/** The image the configuration describes: built here, else the kept one as its record says. */
async function configuredImage(
  plan: BuildPlan,
  run: BuiltRun,
  carried: InstallEntry[],
  records: RootfsRecord[],
): Promise<{ verityParams: string | undefined; boot: ImageBoot; note?: string }> {
  if (plan.rootfs.some((r) => r.role === 'image')) {
    return { verityParams: run.rootfs.find((r) => r.role === 'image')?.kernelVerityParams, boot: imageBoot(plan) };
  }
  const kept = keptImageBoot(records, carried);
  return { verityParams: await carriedVerityParams(carried), boot: kept?.boot ?? {}, ...(kept?.note ? { note: kept.note } : {}) };
}

/** Every entry of the install (built, kept, configuration, manifest, sums) and the notes on what was kept. */
export async function planInstall(plan: BuildPlan, run: BuiltRun): Promise<{ entries: InstallEntry[]; notes: string[] }> {
  const entries = artifactEntries(run.rootfs, run.kernels);
  const carried = await keptEntries(
    plan,
    entries,
    plan.rootfs.some((r) => r.role === 'image'),
  );
  const records = carried.length ? keptRecords(await installedRecords(plan.prefix), carried) : [];
  const notes = carried.length ? [`kept from the existing install: ${carried.map((c) => c.path.split('/').pop()).join(', ')}`] : [];
  const image = await configuredImage(plan, run, carried, records);
  if (image.note) notes.push(image.note);
  entries.push(...configEntries(plan, [...entries, ...carried], run.qemu.path, run.qemu.machineType, image.verityParams, image.boot));
  const manifest = buildManifest({
    toolVersion: TOOL_VERSION,
    arch: plan.arch,
    bootTested: plan.bootTest,
    ...(run.sourceDateEpoch !== undefined ? { sourceDateEpoch: run.sourceDateEpoch } : {}),
    agent: run.agent,
    rootfs: run.rootfs,
    kernels: run.kernels,
    bootTests: run.bootTests,
    kept: carried.map((c) => c.path),
    keptRootfs: records,
  });
  const all: InstallEntry[] = [...entries, ...carried, { kind: 'text', path: `${SHARE}/manifest.json`, content: `${JSON.stringify(manifest, null, 2)}\n` }];
  all.push({ kind: 'text', path: `${SHARE}/SHA256SUMS`, content: renderSha256Sums(all) });
  return { entries: all, notes };
}
