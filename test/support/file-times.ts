/**
 * A vitest reporter that writes each test file's time, hooks included, to
 * $FILE_TIMES_OUT (JSON): the JSON reporter's file times count tests only,
 * so a file whose beforeAll builds a kernel for 15 minutes would look quick.
 */
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

export default class FileTimes implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const out = process.env.FILE_TIMES_OUT;
    if (!out) return;
    const files = modules.map((m) => {
      const d = m.diagnostic();
      const ms = d.environmentSetupDuration + d.prepareDuration + d.setupDuration + d.collectDuration + d.duration;
      return { file: relative(process.cwd(), m.moduleId), seconds: Math.round(ms / 1000), state: m.state() };
    });
    writeFileSync(out, `${JSON.stringify(files, null, 2)}\n`);
  }
}
