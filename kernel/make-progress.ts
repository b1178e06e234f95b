/**
 * Kernel make progress (pure): counts kbuild's compile lines ("  CC      fs/ext4/super.o",
 * "  CC [M]  …", "  AS      …", "  HOSTCC  …") in make's output, against a total
 * taken from an earlier build of the same config (kbuild prints no percentage).
 */

/** A kbuild quiet-mode line for one compiled file. */
const COMPILE_LINE = /^ {2}(?:CC|AS|HOSTCC|HOSTCXX|CXX)(?: \[M\])?\s+\S/;

export function isCompileLine(line: string): boolean {
  return COMPILE_LINE.test(line);
}

export interface MakeProgress {
  /** Files compiled so far in this make run. */
  compiled: number;
  /** Expected files for the whole run, when an earlier build of the same config counted them. */
  total?: number;
  /** compiled / total, 0–99 while running (never 100 before make ended), when total is known. */
  percent?: number;
}

export function progressOf(compiled: number, total: number | undefined): MakeProgress {
  if (total === undefined || total <= 0) return { compiled };
  return { compiled, total, percent: Math.min(99, Math.floor((compiled * 100) / total)) };
}

/** "1234/3456 files compiled (35%)", or "1234 files compiled" without a total. */
export function formatProgress(p: MakeProgress): string {
  const noun = p.compiled === 1 && p.total === undefined ? 'file' : 'files';
  if (p.total === undefined) return `${p.compiled} ${noun} compiled`;
  return `${Math.min(p.compiled, p.total)}/${p.total} files compiled (${p.percent ?? 0}%)`;
}

/**
 * Feeds make's output (chunks cut anywhere) and says when a progress report is
 * due: with a total, each time the percentage moves; without, every `every` files.
 */
export class MakeProgressCounter {
  private partial = '';
  private compiledCount = 0;
  private lastReported = -1;

  constructor(
    readonly total?: number,
    private readonly every = 25,
  ) {}

  get compiled(): number {
    return this.compiledCount;
  }

  /** The progress to report after this chunk, or undefined when nothing new is worth reporting. */
  feed(chunk: string): MakeProgress | undefined {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (isCompileLine(line.replace(/\r$/, ''))) this.compiledCount++;
    return this.due();
  }

  /** The progress at make's end (a last line without a newline counted). */
  end(): MakeProgress {
    if (this.partial && isCompileLine(this.partial)) this.compiledCount++;
    this.partial = '';
    return progressOf(this.compiledCount, this.total);
  }

  private due(): MakeProgress | undefined {
    const p = progressOf(this.compiledCount, this.total);
    const mark = p.percent ?? Math.floor(this.compiledCount / this.every);
    if (this.compiledCount === 0 || mark === this.lastReported) return undefined;
    this.lastReported = mark;
    return p;
  }
}

/** Key of a make run's recorded file count: the same config and targets compile the same files. */
export function progressKey(configSha256: string, stepName: string): string {
  return `${configSha256.slice(0, 16)}:${stepName}`;
}

/**
 * The total to count against: the recorded count of a full build, but only when
 * this build starts from an unbuilt tree (an incremental build compiles a few files).
 */
export function expectedTotal(recorded: Record<string, number>, key: string, treeBuilt: boolean): number | undefined {
  if (treeBuilt) return undefined;
  const n = recorded[key];
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The record after a run: keeps the largest count seen (a full build's), at most `keep` keys. */
export function recordCount(recorded: Record<string, number>, key: string, compiled: number, keep = 64): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(recorded)) if (k !== key && typeof v === 'number') out[k] = v;
  const entries = Object.entries(out).slice(-(keep - 1));
  return { ...Object.fromEntries(entries), [key]: Math.max(compiled, recorded[key] ?? 0) };
}
