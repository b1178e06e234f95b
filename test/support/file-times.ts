/**
 * A vitest reporter that writes each test file's time, hooks included, to
 * $FILE_TIMES_OUT (JSON): the JSON reporter's file times count tests only,
 * so a file whose beforeAll builds a kernel for 15 minutes would look quick.
 * The shared fixtures the global setup builds (test/support/shared-fixtures.ts)
 * come first, one line each.
 */
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';
import type { FixtureTime } from './shared-fixtures.js';

export default class FileTimes implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const out = process.env.FILE_TIMES_OUT;
    if (!out) return;
    // Absent when the integration project did not run (its global setup provides it).
    const fixtures: FixtureTime[] = (this.vitest?.projects ?? []).flatMap((p) => p.getProvidedContext().sharedFixtures ?? []);
    const setup = fixtures.map((f) => ({ file: `global setup: ${f.name}`, seconds: f.seconds, state: f.state }));
    const files = modules.map((m) => {
      const d = m.diagnostic();
      const ms = d.environmentSetupDuration + d.prepareDuration + d.setupDuration + d.collectDuration + d.duration;
      return { file: relative(process.cwd(), m.moduleId), seconds: Math.round(ms / 1000), state: m.state() };
    });
    writeFileSync(out, `${JSON.stringify([...setup, ...files], null, 2)}\n`);
  }
}
