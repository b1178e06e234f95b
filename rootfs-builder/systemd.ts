/** systemd-mode pieces: the agent's units, their enablement, and Kata's trim list. */
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import type { FileOp } from '../distros/index.js';

export const AGENT_PATH = '/usr/bin/kata-agent';
export const UNIT_DIR = '/usr/lib/systemd/system';

/**
 * Units Kata's image_builder.sh deletes before sealing an image (its
 * systemd_units array: <name>.service and <name>.socket files).
 */
export const KATA_TRIMMED_UNITS = [
  'systemd-coredump@',
  'systemd-journald',
  'systemd-journald-dev-log',
  'systemd-journal-flush',
  'systemd-random-seed',
  'systemd-timesyncd',
  'systemd-tmpfiles-setup',
  'systemd-udevd',
  'systemd-udevd-control',
  'systemd-udevd-kernel',
  'systemd-udev-trigger',
  'systemd-update-utmp',
];

/** Kata's systemd_files array: generators and a timer removed by exact name. */
export const KATA_TRIMMED_FILES = [
  'systemd-bless-boot-generator',
  'systemd-fstab-generator',
  'systemd-getty-generator',
  'systemd-gpt-auto-generator',
  'systemd-tmpfiles-cleanup.timer',
];

function template(name: string): HandlebarsTemplateDelegate {
  const src = readFileSync(new URL(`./templates/${name}`, import.meta.url), 'utf8');
  return Handlebars.compile(src, { noEscape: true, strict: true });
}

export function renderAgentService(vars: { agentPath: string; toolVersion: string }): string {
  return template('kata-agent.service.hbs')(vars);
}

export function renderKataTarget(vars: { toolVersion: string }): string {
  return template('kata-containers.target.hbs')(vars);
}

export function tmpMountUnit(): string {
  return readFileSync(new URL('./templates/tmp.mount', import.meta.url), 'utf8');
}

/**
 * Install and enable the units as Kata does: units in /usr/lib/systemd/system,
 * kata-containers.target wanted by basic.target, dbus.socket wanted by the
 * target when the guest has D-Bus, and tmp.mount (the target requires it)
 * copied from /usr/share/systemd when the distro does not install it.
 */
export function systemdOps(toolVersion: string): FileOp[] {
  return [
    { op: 'write', path: `${UNIT_DIR}/kata-agent.service`, content: renderAgentService({ agentPath: AGENT_PATH, toolVersion }), mode: 0o644 },
    { op: 'write', path: `${UNIT_DIR}/kata-containers.target`, content: renderKataTarget({ toolVersion }), mode: 0o644 },
    { op: 'mkdir', path: '/etc/systemd/system/basic.target.wants' },
    { op: 'symlink', path: '/etc/systemd/system/basic.target.wants/kata-containers.target', target: `${UNIT_DIR}/kata-containers.target` },
    { op: 'mkdir', path: '/etc/systemd/system/kata-containers.target.wants', when: `${UNIT_DIR}/dbus.socket` },
    { op: 'symlink', path: '/etc/systemd/system/kata-containers.target.wants/dbus.socket', target: `${UNIT_DIR}/dbus.socket`, when: `${UNIT_DIR}/dbus.socket` },
    {
      op: 'copy-within',
      path: '/etc/systemd/system/tmp.mount',
      from: ['/usr/share/systemd/tmp.mount'],
      fallback: tmpMountUnit(),
      mode: 0o644,
      unless: `${UNIT_DIR}/tmp.mount`,
    },
    { op: 'trim-units', units: KATA_TRIMMED_UNITS, files: KATA_TRIMMED_FILES },
  ];
}
