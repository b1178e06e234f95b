#!/usr/bin/env node
// Runs every bench/<name>.mjs (each exports run() -> rows) and prints one table:
// ours, baseline and their ratio, each row from one run.
// Usage: node bench/run.mjs [--json] [--kernel <bzImage>] [name …]   (needs `npm run build` first)
//   --json             one JSON object { date, rows: [{ bench, name, ours, baseline, ratio, goal, unit, date, note }] }
//   --kernel <path>    our guest kernel for the boot rows (same as OSBUILDER_BENCH_KERNEL)
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { normalize, table } from './lib/rows.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values, positionals: only } = parseArgs({ options: { json: { type: 'boolean', default: false }, kernel: { type: 'string' } }, allowPositionals: true });
if (values.kernel) process.env.OSBUILDER_BENCH_KERNEL = values.kernel;
const names = (await readdir(here))
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.slice(0, -4))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

const date = new Date().toISOString();
const rows = [];
for (const name of names) {
  process.stderr.write(`bench: ${name}…\n`);
  try {
    const mod = await import(pathToFileURL(join(here, `${name}.mjs`)).href);
    for (const r of await mod.run()) rows.push(normalize({ bench: name, ...r }, date));
  } catch (err) {
    rows.push(normalize({ bench: name, name: '(failed)', note: String(err?.message ?? err).split('\n')[0] }, date));
  }
}

console.log(values.json ? JSON.stringify({ date, rows }, null, 1) : table(rows));
