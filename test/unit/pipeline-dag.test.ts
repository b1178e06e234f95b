import { describe, expect, it } from 'vitest';
import { runDag, type Job } from '../../pipeline/dag.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('runDag', () => {
  it('runs dependencies first and passes their results', async () => {
    const order: string[] = [];
    const job = (id: string, deps: string[]): Job<string> => ({
      id,
      deps,
      run: async (d) => {
        order.push(id);
        return `${id}(${Object.values(d).join(',')})`;
      },
    });
    const r = await runDag([job('image', ['rootfs']), job('rootfs', []), job('boot', ['image', 'kernel']), job('kernel', [])], 2);
    expect(r.boot).toBe('boot(image(rootfs()),kernel())');
    expect(order.indexOf('rootfs')).toBeLessThan(order.indexOf('image'));
    expect(order.at(-1)).toBe('boot');
  });

  it('never runs more than the concurrency limit at once', async () => {
    let active = 0;
    let peak = 0;
    const gates = [deferred(), deferred(), deferred()];
    const jobs: Job<number>[] = gates.map((g, i) => ({
      id: `j${i}`,
      deps: [],
      run: async () => {
        active++;
        peak = Math.max(peak, active);
        await g.promise;
        active--;
        return i;
      },
    }));
    const all = runDag(jobs, 2);
    await Promise.resolve();
    gates.forEach((g) => g.resolve());
    await all;
    expect(peak).toBe(2);
  });

  it('stops starting jobs after a failure and rethrows it', async () => {
    const started: string[] = [];
    const jobs: Job<void>[] = [
      {
        id: 'a',
        deps: [],
        run: async () => {
          started.push('a');
          throw new Error('a failed');
        },
      },
      { id: 'b', deps: ['a'], run: async () => void started.push('b') },
    ];
    await expect(runDag(jobs, 1)).rejects.toThrow('a failed');
    expect(started).toEqual(['a']);
  });

  it('rejects unknown dependencies and cycles', async () => {
    await expect(runDag([{ id: 'a', deps: ['x'], run: async () => 1 }], 1)).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringContaining('unknown job x'),
    });
    await expect(
      runDag(
        [
          { id: 'a', deps: ['b'], run: async () => 1 },
          { id: 'b', deps: ['a'], run: async () => 1 },
        ],
        1,
      ),
    ).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('cycle') });
  });
});
