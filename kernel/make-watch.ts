/**
 * Watches a kernel make's output and reports its progress (core/log.ts
 * progress(): the step's spinner line on a TTY, events with --json). The
 * files a make run compiled are recorded in the cache by config and targets,
 * so the next build of the same config from an unbuilt tree has a total.
 */
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { cacheRoot } from '../core/cache.js';
import { debug, progress } from '../core/log.js';
import { sha256 } from '../core/hash.js';
import { expectedTotal, formatProgress, MakeProgressCounter, progressKey, recordCount, type MakeProgress } from './make-progress.js';

function recordPath(): string {
  return join(cacheRoot(), 'kernel-make-counts.json');
}

async function readRecord(): Promise<Record<string, number>> {
  const text = await readFile(recordPath(), 'utf8').catch(() => undefined);
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, number>) : {};
  } catch {
    return {};
  }
}

/** Best effort: a lost record only costs the next build its percentage. */
async function writeRecord(record: Record<string, number>): Promise<void> {
  const path = recordPath();
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, `${JSON.stringify(record, null, 1)}\n`);
    await rename(tmp, path);
  } catch (err) {
    debug(`cannot record the kernel make's file count in ${path}: ${(err as Error).message}`);
  }
}

export interface MakeWatch {
  onOutput: (chunk: string) => void;
  /** After make succeeded: the last report and the record of this run's count. */
  finish: () => Promise<void>;
}

function report(stepTitle: string, p: MakeProgress): void {
  progress(stepTitle, { done: p.compiled, total: p.total, percent: p.percent, unit: 'files', text: formatProgress(p) });
}

/** A watcher for one make step (`stepName` = its targets) of `config` in `tree`. */
export async function watchMake(tree: string, stepTitle: string, stepName: string, config: string): Promise<MakeWatch> {
  const key = progressKey(sha256(config), stepName);
  const treeBuilt = (await stat(join(tree, 'vmlinux')).catch(() => undefined)) !== undefined;
  const counter = new MakeProgressCounter(expectedTotal(await readRecord(), key, treeBuilt));
  return {
    onOutput: (chunk) => {
      const p = counter.feed(chunk);
      if (p) report(stepTitle, p);
    },
    finish: async () => {
      const last = counter.end();
      report(stepTitle, last.total === undefined ? last : { ...last, percent: 100 });
      if (!treeBuilt) await writeRecord(recordCount(await readRecord(), key, last.compiled));
    },
  };
}
