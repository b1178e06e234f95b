/**
 * Final checks on a built rootfs (Kata's check_rootfs and more): the agent is
 * present and runnable, init is present and not dangling, systemd mode has
 * its units and systemd, and nothing is owned by the (non-root) building user.
 */
import type { SafeRoot } from '../core/fs-safe.js';
import { OsbuilderError } from '../core/errors.js';
import type { Arch } from '../core/arch.js';
import type { InitMode } from '../distros/index.js';
import { checkElfForArch, parseElf, type ElfInfo } from './elf.js';
import { AGENT_PATH, UNIT_DIR } from './systemd.js';

export interface CheckInput {
  arch: Arch;
  initMode: InitMode;
  /** uid of the user building (non-root), whose files must not appear in the rootfs. */
  buildingUid?: number;
  /** Whether we build as root: then the agent and /usr must be root-owned. */
  asRoot: boolean;
  /** How to name the agent in errors (e.g. the file given with --agent). */
  agentLabel?: string;
}

export interface CheckReport {
  agent: { path: string; interpreter?: string };
  init: { path: string; resolvesTo: string };
  files: number;
}

/** Checks an agent binary inside the rootfs: ELF for the arch; its interpreter present in the rootfs. */
export async function checkAgentInRoot(fs: SafeRoot, path: string, arch: Arch, label = 'the agent'): Promise<{ interpreter?: string }> {
  const st = await fs.stat(path);
  if (!st?.isFile())
    throw new OsbuilderError('MISSING_AGENT', `${path} is missing from the rootfs`, 'this is a bug in osbuilder: rerun with --debug and report it');
  if ((st.mode & 0o111) === 0) throw new OsbuilderError('AGENT_INVALID', `${path} in the rootfs is not executable`, 'the agent must be installed 0755');
  const head = (await fs.readFile(path)).subarray(0, 64 * 1024);
  const info: ElfInfo | undefined = parseElf(head);
  const interpreter = checkElfForArch(info, arch, label);
  if (interpreter !== undefined) {
    const loader = await fs.stat(interpreter);
    if (!loader?.isFile()) {
      throw new OsbuilderError(
        'AGENT_INVALID',
        `${label} is dynamically linked and needs ${interpreter}, which the rootfs does not have`,
        'build the agent statically (osbuilder builds its own agent that way), or add the C library package with --extra-pkgs',
      );
    }
    return { interpreter };
  }
  return {};
}

export async function verifyRootfs(fs: SafeRoot, input: CheckInput): Promise<CheckReport> {
  const agent = await checkAgentInRoot(fs, AGENT_PATH, input.arch, input.agentLabel ?? 'the agent');
  const initTarget = await checkInit(fs, input.initMode);
  if (input.initMode === 'agent-init') await checkAgentInit(fs, initTarget);
  else await checkSystemd(fs);
  const files = await checkOwners(fs, input);
  return { agent: { path: AGENT_PATH, ...agent }, init: { path: '/sbin/init', resolvesTo: initTarget }, files };
}

/** /sbin/init is present, not dangling and executable; returns what it resolves to. */
async function checkInit(fs: SafeRoot, initMode: InitMode): Promise<string> {
  const initLink = await fs.lstat('/sbin/init');
  if (!initLink)
    throw new OsbuilderError(
      'MISSING_INIT',
      '/sbin/init is missing from the rootfs',
      initMode === 'systemd'
        ? 'systemd mode needs the init package (systemd-sysv); check the distro package set'
        : 'this is a bug in osbuilder: rerun with --debug and report it',
    );
  const initStat = await fs.stat('/sbin/init');
  if (!initStat) {
    throw new OsbuilderError(
      'MISSING_INIT',
      '/sbin/init is a dangling symlink',
      'install the package that provides it (systemd for systemd mode), or use --agent-init',
    );
  }
  if (!initStat.isFile() || (initStat.mode & 0o111) === 0)
    throw new OsbuilderError('MISSING_INIT', '/sbin/init is not an executable file', 'check the rootfs layout');
  return fs.realpath('/sbin/init');
}

/** Agent as init: /sbin/init and /init both resolve to the agent. */
async function checkAgentInit(fs: SafeRoot, initTarget: string): Promise<void> {
  const agentReal = await fs.realpath(AGENT_PATH);
  if (initTarget !== agentReal)
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `/sbin/init resolves to ${initTarget}, not the agent`,
      'this is a bug in osbuilder: rerun with --debug and report it',
    );
  if ((await fs.realpath('/init').catch(() => '')) !== agentReal)
    throw new OsbuilderError('VERIFY_FAILED', '/init does not resolve to the agent', 'an initrd boots /init; this is a bug in osbuilder');
}

/** systemd mode: the agent's units and systemd itself. */
async function checkSystemd(fs: SafeRoot): Promise<void> {
  for (const unit of ['kata-agent.service', 'kata-containers.target']) {
    if (!(await fs.stat(`${UNIT_DIR}/${unit}`))?.isFile())
      throw new OsbuilderError('VERIFY_FAILED', `${UNIT_DIR}/${unit} is missing`, 'this is a bug in osbuilder');
  }
  const systemd = (await fs.stat('/usr/lib/systemd/systemd')) ?? (await fs.stat('/lib/systemd/systemd'));
  if (!systemd?.isFile())
    throw new OsbuilderError(
      'VERIFY_FAILED',
      'systemd mode, but the rootfs has no /usr/lib/systemd/systemd',
      'install systemd in the guest, or build with --agent-init',
    );
}

/** Nothing owned by the building user; as root, system files and the agent owned by root. Returns the number of files. */
async function checkOwners(fs: SafeRoot, input: CheckInput): Promise<number> {
  let files = 0;
  const foreign: string[] = [];
  const notRoot: string[] = [];
  await fs.walkTree(({ path, stats }) => {
    files++;
    if (input.buildingUid !== undefined && input.buildingUid !== 0 && stats.uid === input.buildingUid && foreign.length < 10) foreign.push(path);
    if (input.asRoot && stats.uid !== 0 && !stats.isSymbolicLink() && isSystemPath(path) && notRoot.length < 10) notRoot.push(`${path} (uid ${stats.uid})`);
  });
  if (foreign.length > 0) {
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `files in the rootfs are owned by the building user (uid ${input.buildingUid}), not root: ${foreign.join(', ')}`,
      'build as root or with a rootful container engine, so guest files keep their real owners',
    );
  }
  const agentStat = await fs.stat(AGENT_PATH);
  if (input.asRoot && agentStat && agentStat.uid !== 0) notRoot.unshift(`${AGENT_PATH} (uid ${agentStat.uid})`);
  if (notRoot.length > 0) {
    throw new OsbuilderError(
      'VERIFY_FAILED',
      `system files are not owned by root: ${notRoot.join(', ')}`,
      'the bootstrap lost file owners; build with a rootful container engine',
    );
  }
  return files;
}

/** Executables and libraries; some packages legitimately own files elsewhere (e.g. /etc/chrony keys by _chrony). */
function isSystemPath(path: string): boolean {
  return /^\/usr\/(s?bin|lib)\//.test(path) && !/^\/usr\/lib\/[^/]+\/(cache|state)\//.test(path);
}
