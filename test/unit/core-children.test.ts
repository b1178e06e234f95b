/**
 * core/children.ts: every child started through core/exec is tracked until
 * reaped, and stopChildren leaves none behind — not even one that ignores
 * SIGTERM (SIGKILL after the grace). "Reaped" is checked in /proc: a zombie
 * still has an entry there.
 */
import { access, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { liveChildren, stopChildren } from '../../core/children.js';
import { run, start } from '../../core/exec.js';

const inProc = (pid: number) =>
  access(`/proc/${pid}`).then(
    () => true,
    () => false,
  );

describe('child tracking', () => {
  it('forgets a child once it has exited', async () => {
    await run('true', []);
    const c = start('sh', ['-c', 'exit 4'], { reject: false });
    const pid = c.pid!;
    expect(liveChildren()).toContain(pid);
    expect((await c).exitCode).toBe(4);
    expect(liveChildren()).not.toContain(pid);
  });

  it('stopChildren terminates, kills the stubborn after the grace, and returns once all are reaped', async () => {
    const polite = start('sleep', ['300'], { reject: false });
    // Ignored signals survive exec: this sleep ignores SIGTERM.
    const stubborn = start('sh', ['-c', 'trap "" TERM; exec sleep 300'], { reject: false });
    const pids = [polite.pid!, stubborn.pid!];
    // Until sh has exec'd, its trap may not be set: wait for it to be `sleep`.
    for (let i = 0; i < 200 && !(await readFile(`/proc/${pids[1]}/comm`, 'utf8')).startsWith('sleep'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(liveChildren()).toEqual(expect.arrayContaining(pids));
    await stopChildren(300);
    for (const pid of pids) expect(await inProc(pid)).toBe(false);
    expect((await polite).signal).toBe('SIGTERM');
    expect((await stubborn).signal).toBe('SIGKILL');
    expect(liveChildren()).toEqual([]);
  });

  it('a child that failed to spawn is not tracked', async () => {
    const c = start('/nonexistent/tool', [], { reject: false });
    await c;
    expect(liveChildren()).toEqual([]);
    await stopChildren();
  });
});
