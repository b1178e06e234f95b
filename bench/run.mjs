#!/usr/bin/env node
// Runs every bench/<name>.mjs (each exports run() -> rows) and prints one table of ratios.
// Usage: node bench/run.mjs [name …]   (needs `npm run build` first)
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
const names = (await readdir(here))
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.slice(0, -4))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

const rows = [];
for (const name of names) {
  process.stderr.write(`bench: ${name}…\n`);
  try {
    const mod = await import(pathToFileURL(join(here, `${name}.mjs`)).href);
    for (const r of await mod.run()) rows.push({ bench: name, ...r });
  } catch (err) {
    rows.push({ bench: name, name: '(failed)', note: String(err?.message ?? err).split('\n')[0] });
  }
}

const fmt = (v, d = 0) => (typeof v === 'number' ? v.toFixed(d) : v ?? '');
const cols = [
  ['bench', (r) => r.bench],
  ['case', (r) => r.name],
  ['ours ms', (r) => fmt(r.ours_ms)],
  ['baseline ms', (r) => fmt(r.baseline_ms)],
  ['ratio', (r) => fmt(r.ratio, 2)],
  ['goal', (r) => r.goal ?? ''],
  ['note', (r) => r.note ?? ''],
];
const cells = rows.map((r) => cols.map(([, f]) => String(f(r))));
const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
const line = (c) => '| ' + c.map((x, i) => x.padEnd(widths[i])).join(' | ') + ' |';
console.log(line(cols.map(([h]) => h)));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const c of cells) console.log(line(c));
