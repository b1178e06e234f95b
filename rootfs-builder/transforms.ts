/**
 * Pure text edits Kata's rootfs.sh makes with sed/cat, by name so a plan can
 * refer to them as data.
 */
import type { TransformName } from '../distros/index.js';

/**
 * chrony.conf: sync to the host's PTP clock (/dev/ptp0, from the kvm-ptp
 * driver), step the clock when off by more than 1 s, and comment out network
 * time sources (rootfs.sh setup_rootfs).
 */
export function chronyConf(text: string): string {
  const refclock = 'refclock PHC /dev/ptp0 poll 3 dpoll -2 offset 0';
  const lines = text.split('\n').map((l) => (/^(server |pool |peer )/.test(l) ? `# ${l}` : l));
  let out = lines.join('\n');
  if (!out.includes(refclock)) {
    if (!out.endsWith('\n')) out += '\n';
    out += `${refclock}\n# Step the clock instead of slewing it when it is off by more than one second\nmakestep 1 -1\n`;
  }
  return out;
}

/**
 * chrony's unit: drop "-u <user>" (the user may not exist in the guest) and
 * start only when the PTP device exists.
 */
export function chronyService(text: string): string {
  let out = text.replace(/^(ExecStart=.*?)\s+-u\s+[A-Za-z0-9_]+/gm, '$1');
  if (!/^ConditionPathExists=\/dev\/ptp0$/m.test(out)) out = out.replace(/^\[Unit\]$/m, '[Unit]\nConditionPathExists=/dev/ptp0');
  return out;
}

export const TRANSFORMS: Record<TransformName, (text: string) => string> = {
  'chrony-conf': chronyConf,
  'chrony-service': chronyService,
};
