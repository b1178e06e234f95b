// Bench rows: each bench's run() returns rows with ours_<unit> and baseline_<unit>
// (unit ms or bytes) measured in one run; the ratio is always ours / baseline.
import { pathToFileURL } from 'node:url';

export function normalize(r, date) {
  const unit = r.ours_bytes !== undefined ? 'bytes' : 'ms';
  const ours = r[`ours_${unit}`] ?? null;
  const baseline = r[`baseline_${unit}`] ?? null;
  const ratio = typeof ours === 'number' && typeof baseline === 'number' ? ours / baseline : null;
  return { ...(r.bench ? { bench: r.bench } : {}), name: r.name, ours, baseline, ratio, goal: r.goal ?? '', unit, date, note: r.note ?? '' };
}

const num = (v, d = 0) => (typeof v === 'number' ? v.toFixed(d) : '');

/** A markdown table of normalized rows. */
export function table(rows) {
  const cols = [
    ...(rows.some((r) => r.bench) ? [['bench', (r) => r.bench ?? '']] : []),
    ['case', (r) => r.name],
    ['ours', (r) => num(r.ours)],
    ['baseline', (r) => num(r.baseline)],
    ['unit', (r) => r.unit],
    ['ratio', (r) => num(r.ratio, 2)],
    ['goal', (r) => r.goal],
    ['note', (r) => r.note],
  ];
  const cells = rows.map((r) => cols.map(([, f]) => String(f(r))));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`;
  return [line(cols.map(([h]) => h)), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/** When `url` is the script node was started with: runs it and prints its rows. */
export async function mainIfRun(url, run) {
  if (url !== pathToFileURL(process.argv[1] ?? '').href) return;
  const date = new Date().toISOString();
  console.log(table((await run()).map((r) => normalize(r, date))));
}
