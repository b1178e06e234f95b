/**
 * Every child process osbuilder starts, from spawn until it has exited and
 * been reaped (Node emits 'exit' only after waitpid). Before osbuilder exits
 * it stops what is left: SIGTERM, SIGKILL after a bounded grace, then waits
 * for each exit, so no child outlives us as an orphan or a zombie.
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

function gone(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/** Records `child` until its 'exit' (or spawn 'error'). */
export function track(child: ChildProcess): void {
  if (gone(child)) return;
  live.add(child);
  const forget = () => live.delete(child);
  child.once('exit', forget);
  child.once('error', () => {
    if (gone(child)) forget();
  });
}

/** Pids of the children that have not exited yet (for tests and --debug). */
export function liveChildren(): number[] {
  return [...live].filter((c) => !gone(c)).map((c) => c.pid!);
}

function exited(child: ChildProcess): Promise<void> {
  return gone(child) ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

/** Stops every child still running and resolves once all have been reaped. */
export async function stopChildren(graceMs = 5000): Promise<void> {
  const list = [...live].filter((c) => !gone(c));
  if (!list.length) return;
  for (const c of list) c.kill('SIGTERM');
  const all = Promise.all(list.map(exited));
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([all.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)))]);
  clearTimeout(timer);
  if (!inTime) for (const c of list) if (!gone(c)) c.kill('SIGKILL');
  await all;
}
