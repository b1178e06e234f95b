import { describe, expect, it } from 'vitest';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockHeld, lockOwner, withLock } from '../../core/lock.js';
import { ownerAlive, ownerOfName, ownerTag, parseOwnerTag } from '../../core/owner.js';
import { liveProcess } from '../support/owner.js';

describe('owner tags', () => {
  it('name this process by pid and start time, and tell the living from the dead', async () => {
    const self = parseOwnerTag(ownerTag())!;
    expect(self.pid).toBe(process.pid);
    expect(ownerAlive(self)).toBe(true);
    // Same pid, other start time: a reused pid is not the owner.
    expect(ownerAlive({ pid: process.pid, start: self.start + 1 })).toBe(false);
    const p = await liveProcess();
    expect(ownerAlive(parseOwnerTag(p.tag)!)).toBe(true);
    await p.stop();
    expect(ownerAlive(parseOwnerTag(p.tag)!)).toBe(false);
  });

  it('are read from every temp path name osbuilder makes, and only from those', () => {
    for (const name of [
      'abc.tmp-12-34',
      '.kata.img.tmp-12-34',
      '.kata.img.tmp-12-34.old',
      'abc.tmp-12-34-old',
      'linux-6.1.new-12-34.extract-12-34',
      'linux-6.1.new-12-34',
      '.kata-containers.staged-12-34',
      'build-12-34-AbC123',
      'repro-12-34-x9',
    ]) {
      expect(ownerOfName(name), name).toEqual({ pid: 12, start: 34 });
    }
    for (const name of ['0123abcdef', 'linux-6.1-x86_64', 'abc.tmp-12', 'build-AbC123', 'kernel-default']) expect(ownerOfName(name), name).toBeUndefined();
  });
});

describe('withLock', () => {
  it('runs one holder at a time in this process', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'osb-lock-')), 'x.lock');
    const log: string[] = [];
    const job = (n: string) =>
      withLock(path, async () => {
        log.push(`${n}+`);
        await new Promise((r) => setTimeout(r, 50));
        log.push(`${n}-`);
      });
    await Promise.all([job('a'), job('b'), job('c')]);
    expect(log.join(' ')).toMatch(/^(\w)\+ \1- (\w)\+ \2- (\w)\+ \3-$/);
    expect(await readdir(join(path, '..'))).toEqual([]);
  });

  it('waits while a live process holds the lock and takes it over once that process is dead', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'osb-lock-')), 'x.lock');
    const holder = await liveProcess();
    await writeFile(path, `${holder.tag}\n`);
    const waitedFor: string[] = [];
    let ran = false;
    const locked = withLock(
      path,
      async () => void (ran = true),
      (h) => waitedFor.push(h),
    );
    await new Promise((r) => setTimeout(r, 600));
    expect(ran).toBe(false);
    expect(waitedFor).toEqual([holder.tag]);
    expect(await lockHeld(path)).toBe(true);
    await holder.stop();
    await locked;
    expect(ran).toBe(true);
    expect(await lockOwner(path)).toBeUndefined();
  });

  it('takes over at once a lock whose owner is dead or unreadable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-lock-'));
    const dead = await liveProcess();
    await dead.stop();
    await writeFile(join(dir, 'a.lock'), `${dead.tag}\n`);
    await writeFile(join(dir, 'b.lock'), 'garbage\n');
    for (const f of ['a.lock', 'b.lock']) {
      let owner: string | undefined;
      await withLock(join(dir, f), async () => void (owner = await lockOwner(join(dir, f))));
      expect(owner).toBe(ownerTag());
    }
    expect(await readdir(dir)).toEqual([]);
  });
});
