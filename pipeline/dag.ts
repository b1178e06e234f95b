import { internalError } from '../core/errors.js';

/**
 * Runs jobs that depend on each other with at most `jobs` running at once.
 * A job starts when all its dependencies have finished; the first failure
 * stops new starts and is rethrown once running jobs have settled.
 */
export interface Job<T> {
  id: string;
  deps: string[];
  run: (deps: Record<string, T>) => Promise<T>;
}

export async function runDag<T>(jobs: Job<T>[], concurrency: number): Promise<Record<string, T>> {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  for (const j of jobs) {
    for (const d of j.deps) if (!byId.has(d)) throw internalError(`job ${j.id} depends on unknown job ${d}`);
  }
  const done: Record<string, T> = {};
  const pending = new Set(jobs.map((j) => j.id));
  const running = new Map<string, Promise<void>>();
  let failure: unknown;

  const ready = () => [...pending].filter((id) => byId.get(id)!.deps.every((d) => d in done));
  while (pending.size > 0 || running.size > 0) {
    if (failure === undefined) {
      for (const id of ready()) {
        if (running.size >= Math.max(1, concurrency)) break;
        pending.delete(id);
        const job = byId.get(id)!;
        const deps = Object.fromEntries(job.deps.map((d) => [d, done[d] as T]));
        running.set(
          id,
          job
            .run(deps)
            .then(
              (v) => void (done[id] = v),
              (err: unknown) => void (failure ??= err),
            )
            .finally(() => running.delete(id)),
        );
      }
    }
    if (running.size === 0) {
      if (failure !== undefined) break;
      if (pending.size > 0) throw internalError(`dependency cycle among ${[...pending].join(', ')}`);
      break;
    }
    await Promise.race(running.values());
  }
  if (failure !== undefined) throw failure;
  return done;
}
