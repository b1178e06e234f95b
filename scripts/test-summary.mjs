// Adds up vitest JSON reports into one closing line: "tests: N passed, N failed, N skipped",
// after the wall time of each phase (TEST_PHASES="setup=12 unit=40 …", seconds, from
// scripts/test.sh) and of each integration file with its hooks (.test-out/integration-files.json,
// from test/support/file-times.ts), so a slow or hanging file shows in the log.
// The integration suite's neighbours (test/support/neighbours.ts) count as one test.
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const lines = [];
for (const phase of (process.env.TEST_PHASES ?? '').split(' ').filter(Boolean)) {
  const [name, secs] = phase.split('=');
  lines.push(`  ${name.padEnd(44)} ${String(secs).padStart(6)} s`);
}
for (const file of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    console.error(`test-summary: no report at ${file}`);
    failed++;
    continue;
  }
  passed += report.numPassedTests;
  // A file that fails to load has no failed tests of its own: count it once.
  const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length;
  failed += report.numFailedTests + brokenFiles;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  if (basename(file) === 'integration.json') {
    // Per file, hooks included (test/support/file-times.ts): vitest's JSON times count tests only.
    try {
      for (const f of JSON.parse(readFileSync(join(dirname(file), 'integration-files.json'), 'utf8'))) {
        lines.push(`  ${f.file.padEnd(44)} ${String(f.seconds).padStart(6)} s  ${f.state}`);
      }
    } catch {
      lines.push('  (no per-file times: .test-out/integration-files.json is missing)');
    }
    let neighbours;
    try {
      neighbours = JSON.parse(readFileSync(join(dirname(file), 'neighbours.json'), 'utf8'));
    } catch {
      neighbours = undefined;
    }
    if (neighbours?.alive.qemu && neighbours.alive.container) passed++;
    else {
      failed++;
      console.error(
        `test-summary: the neighbour QEMU and container did not both survive the integration run: ${JSON.stringify(neighbours?.alive ?? 'no report')}`,
      );
    }
  }
}
if (lines.length) console.log(`wall time:\n${lines.join('\n')}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
