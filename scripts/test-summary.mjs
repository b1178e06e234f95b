// Adds up vitest JSON reports into one closing line: "tests: N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

let passed = 0, failed = 0, skipped = 0;
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
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
