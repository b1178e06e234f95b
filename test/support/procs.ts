/**
 * Processes as tests see them: only those a test started, found through the
 * process tree (/proc/<pid>/stat) or a name the test chose, never by a pattern
 * that another user's VM or command could also match.
 */
import { readdir, readFile } from 'node:fs/promises';

export interface Proc {
  pid: number;
  ppid: number;
  /** The kernel's short name (a zombie keeps it; its cmdline is empty). */
  comm: string;
  state: string;
  argv: string[];
}

async function readProc(pid: number): Promise<Proc | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: it ends at the last ')'.
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').slice(0, -1);
    return { pid, ppid: Number(ppid), comm: stat.slice(stat.indexOf('(') + 1, close), state: state ?? '?', argv };
  } catch {
    return undefined;
  }
}

export async function allProcs(): Promise<Proc[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  return (await Promise.all(pids.map(readProc))).filter((p): p is Proc => p !== undefined);
}

/** Every live descendant of `pid` (children, grandchildren, …), zombies included. */
export async function descendants(pid: number): Promise<Proc[]> {
  const procs = await allProcs();
  const out: Proc[] = [];
  let frontier = new Set([pid]);
  while (frontier.size) {
    const next = procs.filter((p) => frontier.has(p.ppid));
    out.push(...next);
    frontier = new Set(next.map((p) => p.pid));
  }
  return out;
}

/** True while /proc/<pid> exists: running, or exited and not yet reaped. */
export async function exists(pid: number): Promise<boolean> {
  return (await readProc(pid)) !== undefined;
}

/** Those of `procs` that still exist (a zombie counts), as "pid comm state" lines. */
export async function stillThere(procs: readonly Proc[]): Promise<string[]> {
  const now = await Promise.all(procs.map((p) => readProc(p.pid)));
  // Same pid and same name: not a recycled pid.
  return now.filter((p, i): p is Proc => p !== undefined && p.comm === procs[i]!.comm).map((p) => `${p.pid} ${p.comm} ${p.state}`);
}

/** QEMU processes whose `-name` value is `name`, or starts with it when `prefix` is set. */
export async function qemuNamed(name: string, opts: { prefix?: boolean } = {}): Promise<Proc[]> {
  return (await allProcs()).filter((p) => {
    if (!p.comm.startsWith('qemu-system')) return false;
    const i = p.argv.indexOf('-name');
    const value = i >= 0 ? p.argv[i + 1] : undefined;
    return value !== undefined && (opts.prefix ? value.startsWith(name) : value === name);
  });
}
