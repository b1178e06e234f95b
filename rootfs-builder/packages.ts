/** Installed-package lists as name=version lines, sorted, from each package database format. */

/** dpkg's status file: stanzas with Package, Status ("install ok installed") and Version. */
export function parseDpkgStatus(text: string): string[] {
  const out: string[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z][\w-]*):\s?(.*)$/.exec(line);
      if (m) fields.set(m[1]!, m[2]!);
    }
    const name = fields.get('Package');
    const version = fields.get('Version');
    const status = fields.get('Status') ?? '';
    if (name && version && /\binstalled$/.test(status) && !/\bnot-installed$/.test(status)) {
      const arch = fields.get('Architecture');
      const multiArch = fields.get('Multi-Arch') === 'same' && arch ? `:${arch}` : '';
      out.push(`${name}${multiArch}=${version}`);
    }
  }
  return sortUnique(out);
}

/** apk's installed database: blocks with P: (name) and V: (version). */
export function parseApkInstalled(text: string): string[] {
  const out: string[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    let name: string | undefined;
    let version: string | undefined;
    for (const line of block.split('\n')) {
      if (line.startsWith('P:')) name = line.slice(2);
      else if (line.startsWith('V:')) version = line.slice(2);
    }
    if (name && version) out.push(`${name}=${version}`);
  }
  return sortUnique(out);
}

/** Lines already in name=version form (rpm --qf, dpkg-query -f). */
export function parseNameVersionLines(text: string): string[] {
  return sortUnique(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^[^=\s]+=\S+$/.test(l)),
  );
}

/** Clear Linux: one marker file per installed bundle, all at the OS version. */
export function clearBundles(names: string[], osRelease: string): string[] {
  const version = /^VERSION_ID=["']?([^"'\n]+)/m.exec(osRelease)?.[1] ?? 'unknown';
  return sortUnique(names.filter((n) => !n.startsWith('.')).map((n) => `${n}=${version}`));
}

function sortUnique(list: string[]): string[] {
  return [...new Set(list)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
