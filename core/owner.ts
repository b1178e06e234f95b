/**
 * Who made a temp path or holds a lock: `<pid>-<start>`, the pid and its start
 * time (clock ticks since boot, /proc/<pid>/stat field 22). A pid alone is
 * reused; the pair names one process for the life of the machine, so a path
 * whose owner is gone can be removed without asking anyone.
 */
import { readFileSync } from 'node:fs';

export interface Owner {
  pid: number;
  start: number;
}

/** Start time of `pid`, or undefined when no such process exists. */
export function processStart(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

let self: string | undefined;

/** This process's tag, `<pid>-<start>`. */
export function ownerTag(): string {
  self ??= `${process.pid}-${processStart(process.pid) ?? 0}`;
  return self;
}

export function parseOwnerTag(tag: string): Owner | undefined {
  const m = /^(\d+)-(\d+)$/.exec(tag.trim());
  return m ? { pid: Number(m[1]), start: Number(m[2]) } : undefined;
}

/** The owner named in a temp path's name: `<anything><marker><pid>-<start>[-<suffix>]`. */
export function ownerOfName(name: string): Owner | undefined {
  const m = /(?:\.tmp-|\.extract-|\.new-|\.staged-|^build-|^repro-)(\d+)-(\d+)(?:-[A-Za-z0-9]+)?(?:\.old)?$/.exec(name);
  return m ? { pid: Number(m[1]), start: Number(m[2]) } : undefined;
}

export function ownerAlive(o: Owner): boolean {
  return processStart(o.pid) === o.start;
}
