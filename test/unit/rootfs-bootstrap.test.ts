/**
 * The bootstrap's order around the engine-side tree: the volume and the
 * package-cache listing, then the listing and the tree's export, each pair at
 * once, and the tree removed only once nothing uses it any more, whatever failed.
 */
import { describe, expect, it } from 'vitest';
import type { BuildCache } from '../../core/cache.js';
import { configureLog } from '../../core/log.js';
import { debian } from '../../distros/debian/definition.js';
import { bootstrapTree } from '../../rootfs-builder/bootstrap.js';
import type { PackageCachePlan } from '../../rootfs-builder/package-cache.js';
import type { RootfsPlan } from '../../rootfs-builder/plan.js';
import type { Runner } from '../../rootfs-builder/runner.js';

const pc = {
  key: 'k',
  hostDir: 'vol',
  dir: '/c',
  mounts: [],
  volumes: [{ volume: 'vol', container: '/c' }],
  tool: 'mmdebstrap',
  args: [],
} as unknown as PackageCachePlan;
const plan = {
  version: 'bookworm',
  packages: { extra: [] },
  packageCache: pc,
  bootstrap: [{ title: 'mmdebstrap bookworm', argv: ['mmdebstrap'] }],
  packageSource: { kind: 'dpkg-status', path: '/var/lib/dpkg/status' },
} as unknown as RootfsPlan;

configureLog({ json: true });

const tick = () => new Promise((r) => setTimeout(r, 20));

/** A runner logging what starts and ends; `fail` names the call that rejects. */
function fakeRunner(fail?: 'open' | 'snapshot-1' | 'snapshot-2' | 'fetch') {
  const log: string[] = [];
  let snaps = 0;
  const act = async (name: string, value?: unknown) => {
    log.push(`${name} start`);
    await tick();
    log.push(`${name} end`);
    if (fail === name) throw new Error(`${name} failed`);
    return value;
  };
  const runner = {
    open: () => act('open'),
    snapshotPackages: () => act(`snapshot-${++snaps}`, new Map(snaps === 1 ? [] : [['a.deb', '1:1:1']])),
    run: () => act('run', ''),
    fetchTree: () => act('fetch'),
    close: async () => {
      log.push('close');
    },
  } as unknown as Runner;
  return { runner, log };
}

describe('bootstrapTree', () => {
  it('lists the cache while the volume is made, and again while the tree is exported', async () => {
    const { runner, log } = fakeRunner();
    const r = await bootstrapTree(runner, plan, {} as BuildCache, debian, '/out');
    expect(r.packageCache).toMatchObject({ before: 0, stored: 1, after: 1 });
    const at = (l: string) => log.indexOf(l);
    const overlapped = (x: string, y: string) => at(`${x} start`) < at(`${y} end`) && at(`${y} start`) < at(`${x} end`);
    expect(overlapped('open', 'snapshot-1')).toBe(true);
    expect(overlapped('fetch', 'snapshot-2')).toBe(true);
    expect(at('run start')).toBeGreaterThan(Math.max(at('open end'), at('snapshot-1 end')));
    expect(at('snapshot-2 start')).toBeGreaterThan(at('run end'));
    expect(log.at(-1)).toBe('close');
  });

  it.each(['open', 'snapshot-1', 'snapshot-2', 'fetch'] as const)('%s failing: its partner ends before the tree is removed', async (fail) => {
    const { runner, log } = fakeRunner(fail);
    await expect(bootstrapTree(runner, plan, {} as BuildCache, debian, '/out')).rejects.toThrow(`${fail} failed`);
    expect(log.at(-1)).toBe('close');
    expect(log.filter((l) => l.endsWith('start')).length).toBe(log.filter((l) => l.endsWith('end')).length);
    // Nothing is bootstrapped into a tree that is not there, or without the listing to compare with.
    expect(log.includes('run start')).toBe(fail === 'snapshot-2' || fail === 'fetch');
  });
});
