/**
 * The builder's images: its base (given, pulled from a registry, or made
 * locally with mmdebstrap | <engine> import) and the builder image made from
 * the plan's Dockerfile on it, tagged by what goes into it and reused.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARCH_FACTS, hostArch, type Arch } from '../core/arch.js';
import { onInterrupt } from '../core/cleanup.js';
import { ContainerEngine, type EngineKind } from '../core/docker.js';
import { OsbuilderError } from '../core/errors.js';
import { haveTool, run } from '../core/exec.js';
import { info, step } from '../core/log.js';
import { localBaseTag, localBaseTools, type BaseImageChoice } from './options.js';
import { checkForeignMmdebstrap } from './preflight.js';
import { builderTag, localBaseArgv, type RootfsPlan } from './plan.js';

/** Records which builder tools a locally made base holds; a base with another set is remade. */
const BASE_INCLUDE_LABEL = 'org.osbuilder.base-include';

export async function ensureBaseImage(engine: ContainerEngine, plan: RootfsPlan): Promise<string> {
  const base = plan.base!;
  const existing = await engine.imageId(base.ref);
  const includeLabel = base.kind === 'bootstrap' ? base.include.join(',') : '';
  if (existing && (base.kind !== 'bootstrap' || (await madeAsPlanned(engine, base, includeLabel)))) return existing;
  if (base.kind === 'given') {
    throw new OsbuilderError(
      'INPUT_NOT_FOUND',
      `base image ${base.ref} is not present in the local ${engine.kind} image store`,
      `load or import it first (${engine.kind} images lists them), or drop --base-image (Debian-based distros make their base locally)`,
    );
  }
  if (base.kind === 'registry') {
    await step(`pull ${base.ref}`, () =>
      run(engine.cmd, ['pull', base.ref], {
        hint: 'no registry reachable? give a local image with --base-image (Debian-based distros make theirs locally unless --no-bootstrap-base)',
        timeout: 30 * 60_000,
      }),
    );
    return (await engine.imageId(base.ref)) ?? base.ref;
  }
  if (!(await haveTool('mmdebstrap'))) {
    throw new OsbuilderError(
      'TOOL_MISSING',
      'mmdebstrap is not installed (needed to make the Debian base image locally)',
      'apt-get install mmdebstrap (scripts/setup-host.sh does), or give a local image with --base-image (or pull it: --no-bootstrap-base)',
    );
  }
  await checkForeignMmdebstrap(base.arch);
  // A foreign arch's base is recorded as that platform's, or `run --platform` would not find it.
  const platform = base.arch === hostArch() ? undefined : ARCH_FACTS[base.arch].ociPlatform;
  await step(`make base image ${base.ref} (mmdebstrap | ${engine.kind} ${platform ? `build --platform ${platform}` : 'import'})`, () =>
    engine.importFrom(
      { cmd: 'mmdebstrap', args: base.bootstrapArgv! },
      base.ref,
      'check that the Debian mirror is reachable (--mirror), or give --base-image',
      [`LABEL ${BASE_INCLUDE_LABEL}=${includeLabel}`, 'CMD ["/bin/bash"]'],
      platform,
    ),
  );
  const id = await engine.imageId(base.ref);
  if (!id) throw new OsbuilderError('COMMAND_FAILED', `${engine.kind} import did not produce ${base.ref}`, 'rerun with --debug');
  return id;
}

/** A locally made base is reused when it holds the planned tools and is recorded for the planned arch. */
async function madeAsPlanned(engine: ContainerEngine, base: Extract<BaseImageChoice, { kind: 'bootstrap' }>, includeLabel: string): Promise<boolean> {
  if ((await engine.imageLabel(base.ref, BASE_INCLUDE_LABEL)) !== includeLabel) return false;
  return (await engine.imagePlatform(base.ref)) === ARCH_FACTS[base.arch].ociPlatform;
}

/**
 * A local Debian base image made with mmdebstrap | <engine> import, tagged
 * osbuilder/debian-base:<suite>-<arch> and reused when present. For tests and
 * tools that need a Debian image where no registry is reachable.
 */
export async function ensureDebianBase(opts: { engine?: EngineKind; suite?: string; arch?: Arch; mirror?: string } = {}): Promise<{ ref: string; id: string }> {
  const engine = new ContainerEngine(opts.engine ?? 'docker');
  await engine.check();
  const suite = opts.suite ?? 'bookworm';
  const arch = opts.arch ?? hostArch();
  const mirror = opts.mirror ?? 'http://deb.debian.org/debian';
  const ref = localBaseTag(suite, arch);
  const include = localBaseTools();
  const id = await ensureBaseImage(engine, {
    base: { kind: 'bootstrap', ref, suite, arch, mirror, include, bootstrapArgv: localBaseArgv(suite, arch, mirror, include) },
  } as RootfsPlan);
  return { ref, id };
}

export async function ensureBuilderImage(engine: ContainerEngine, plan: RootfsPlan, baseId: string): Promise<string> {
  const tag = builderTag(plan, baseId);
  if (await engine.imageId(tag)) {
    info(`✓ builder image ${tag} (cached)`);
    return tag;
  }
  const ctx = await mkdtemp(join(tmpdir(), 'osbuilder-builder-'));
  // An interrupt during `docker build` must not leave the build context behind either.
  const unregister = onInterrupt(() => rm(ctx, { recursive: true, force: true }));
  try {
    await writeFile(join(ctx, 'Dockerfile'), plan.builder!.dockerfile);
    await step(`build builder image ${tag}`, () =>
      engine.build(
        {
          tag,
          dockerfile: join(ctx, 'Dockerfile'),
          context: ctx,
          buildArgs: plan.builder!.buildArgs,
          labels: { 'org.osbuilder.role': 'rootfs-builder' },
          ...(plan.builder!.platform ? { platform: plan.builder!.platform } : {}),
        },
        `the builder image for ${plan.distro} needs its package archive; check --mirror and the network`,
      ),
    );
  } finally {
    unregister();
    await rm(ctx, { recursive: true, force: true });
  }
  return tag;
}
