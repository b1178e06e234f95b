/**
 * Completes a bootstrapped tree: the guest's configuration, the kernel
 * modules, the agent, the package list and metadata, fixed mtimes; then checks
 * the result and flushes it to disk, all through core/fs-safe.
 */
import { run } from '../core/exec.js';
import { SafeRoot } from '../core/fs-safe.js';
import { step } from '../core/log.js';
import type { DistroDefinition, FileOp } from '../distros/index.js';
import type { AgentBinary } from './agent-source.js';
import { applyFileOps } from './apply.js';
import type { Bootstrapped } from './bootstrap.js';
import { verifyRootfs, type CheckInput, type CheckReport } from './checks.js';
import { prettyName, renderMetadata, renderPackageList } from './metadata.js';
import { clearBundles, parseApkInstalled, parseDpkgStatus, parseNameVersionLines } from './packages.js';
import type { RootfsPlan } from './plan.js';
import type { Runner } from './runner.js';
import { AGENT_PATH } from './systemd.js';

export interface FinishInput {
  plan: RootfsPlan;
  distro: DistroDefinition;
  bootstrapped: Bootstrapped;
  /** Runs depmod where the plan says. */
  runner: Runner;
  /** The host directory of the kernel modules (when the plan has some). */
  modulesDir?: string;
  agent: AgentBinary;
  agentSha: string;
}

export interface Finished {
  report: CheckReport;
  /** How many packages the rootfs holds. */
  packages: number;
  /** PRETTY_NAME of the guest's os-release. */
  osRelease?: string;
}

/** Completes the tree in `dir` (see the module comment). */
export async function finishTree(dir: string, input: FinishInput): Promise<Finished> {
  const { plan, agent } = input;
  const sde = plan.sourceDateEpoch;
  const fs = await SafeRoot.open(dir);
  try {
    await configureGuest(fs, input);
    const km = plan.kernelModules;
    if (km) {
      await step(`kernel modules ${km.kver}`, async () => {
        await fs.remove(km.dest, { recursive: true });
        await fs.copyTreeIn(input.modulesDir!, km.dest);
        await input.runner.depmod(km, input.modulesDir!, fs);
      });
    }
    await step(`install agent ${AGENT_PATH}${plan.agent.init ? ' as init' : ''}`, () => fs.copyIn(agent.path, AGENT_PATH, { mode: 0o755 }));
    const packages = await writeMetadata(fs, input);
    await fs.chmod('/', 0o755);
    if (sde !== undefined) await step('normalise mtimes to SOURCE_DATE_EPOCH', () => fs.setAllTimes(sde));
    const report = await step('check the rootfs', () => verifyRootfs(fs, checkInput(plan, agent)));
    // One flush for the whole tree (the bootstrap skipped per-file fsyncs) before it is renamed into place.
    await run('sync', ['-f', dir]);
    const osRelease = prettyName((await fs.readText('/etc/os-release')) ?? '') || undefined;
    return { report, packages, ...(osRelease ? { osRelease } : {}) };
  } finally {
    await fs.close();
  }
}

/** The distro's post-bootstrap operations and os-release, then the plan's. */
async function configureGuest(fs: SafeRoot, { plan, distro: d, bootstrapped }: FinishInput): Promise<void> {
  const distroOps: FileOp[] = [...(d.postBootstrap?.(plan.bootstrapInput, bootstrapped.captured) ?? [])];
  if (d.osRelease) distroOps.push({ op: 'write', path: '/etc/os-release', content: d.osRelease(plan.version, bootstrapped.captured), mode: 0o644 });
  await step('configure the guest', async () => {
    await applyFileOps(fs, distroOps);
    await applyFileOps(fs, plan.fileOps);
  });
}

/** Writes the package list and osbuilder.yaml; returns the number of packages. */
async function writeMetadata(fs: SafeRoot, { plan, distro: d, bootstrapped, agent, agentSha }: FinishInput): Promise<number> {
  const packages = await step('list packages', () => listPackages(fs, plan, bootstrapped.packageOutput));
  await fs.writeFile(plan.metadata.packagesPath, renderPackageList(packages), { mode: 0o644 });
  await fs.writeFile(
    plan.metadata.path,
    renderMetadata({
      toolVersion: plan.toolVersion,
      distro: d.name,
      displayName: d.displayName,
      version: plan.version,
      arch: plan.arch,
      initMode: plan.initMode,
      packages: { default: plan.packages.default, extra: plan.packages.extra },
      agent: { path: AGENT_PATH, sha256: agentSha, source: agent.source },
      ...(plan.kernelModules ? { kernelModules: plan.kernelModules.kver } : {}),
      createdAt: plan.sourceDateEpoch ?? Math.floor(Date.now() / 1000),
    }),
    { mode: 0o644 },
  );
  return packages.length;
}

async function listPackages(fs: SafeRoot, plan: RootfsPlan, commandOutput: string | undefined): Promise<string[]> {
  const src = plan.packageSource;
  switch (src.kind) {
    case 'dpkg-status':
      return parseDpkgStatus((await fs.readText(src.path)) ?? '');
    case 'apk-installed':
      return parseApkInstalled((await fs.readText(src.path)) ?? '');
    case 'clear-bundles': {
      const names: string[] = [];
      const dir = await fs.stat(src.path);
      if (dir?.isDirectory()) {
        await fs.walkTree(({ name }) => {
          names.push(name);
          return 'skip';
        }, src.path);
      }
      return clearBundles(names, (await fs.readText(src.osRelease)) ?? '');
    }
    case 'command':
      return parseNameVersionLines(commandOutput ?? '');
  }
}

function checkInput(plan: RootfsPlan, agent: AgentBinary): CheckInput {
  const uid = buildingUid();
  return {
    arch: plan.arch,
    initMode: plan.initMode,
    asRoot: process.getuid?.() === 0,
    agentLabel: agent.source === 'default' ? "osbuilder's agent" : `agent ${agent.path}`,
    ...(uid !== undefined ? { buildingUid: uid } : {}),
  };
}

function buildingUid(): number | undefined {
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0) return uid;
  const sudo = Number(process.env.SUDO_UID);
  return Number.isInteger(sudo) && sudo > 0 ? sudo : undefined;
}
