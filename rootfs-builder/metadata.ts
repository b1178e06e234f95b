/**
 * /var/lib/osbuilder/osbuilder.yaml: what Kata's create_summary_file records
 * (tool version, base distro and packages, agent, init mode, creation time),
 * with the agent's sha256. Deterministic: the time comes from SOURCE_DATE_EPOCH
 * when set, keys and lists are in a fixed order.
 */
import { stringify } from 'yaml';
import type { Arch } from '../core/arch.js';
import type { InitMode } from '../distros/index.js';

export interface RootfsMetadata {
  toolVersion: string;
  distro: string;
  displayName: string;
  version: string;
  arch: Arch;
  initMode: InitMode;
  packages: { default: string[]; extra: string[] };
  agent: { path: string; sha256: string; source: string };
  kernelModules?: string;
  /** Seconds since the epoch. */
  createdAt: number;
}

export function renderMetadata(m: RootfsMetadata): string {
  const doc = {
    'file-format-version': '0.0.2',
    osbuilder: { name: 'kata-osbuilder', version: m.toolVersion },
    'rootfs-creation-time': new Date(m.createdAt * 1000).toISOString(),
    description: 'osbuilder rootfs',
    architecture: m.arch,
    'base-distro': {
      name: m.distro,
      'display-name': m.displayName,
      version: m.version,
      packages: { default: m.packages.default, extra: m.packages.extra },
    },
    agent: {
      name: 'kata-agent',
      path: m.agent.path,
      sha256: m.agent.sha256,
      source: m.agent.source,
      'agent-is-init-daemon': m.initMode === 'agent-init' ? 'yes' : 'no',
    },
    init: m.initMode === 'agent-init' ? 'kata-agent' : 'systemd',
    ...(m.kernelModules ? { 'kernel-modules': m.kernelModules } : {}),
  };
  return `---\n${stringify(doc, { lineWidth: 0 })}`;
}

/** name=version lines, one per installed package, for the build manifest. */
/** The PRETTY_NAME of an os-release text ('' when it has none). */
export function prettyName(osRelease: string): string {
  return /^PRETTY_NAME=["']?([^"'\n]*)/m.exec(osRelease)?.[1] ?? '';
}

export function renderPackageList(lines: string[]): string {
  return lines.length ? `${lines.join('\n')}\n` : '';
}
