import { describe, expect, it } from 'vitest';
import { holdSignals, onInterrupt, runInterruptHandlers } from '../../core/cleanup.js';

describe('onInterrupt', () => {
  it('runs handlers newest first, once, and listens for signals only while registered', async () => {
    const before = process.listenerCount('SIGTERM');
    const calls: string[] = [];
    onInterrupt(() => void calls.push('first'));
    const off = onInterrupt(() => void calls.push('second'));
    onInterrupt(() => {
      throw new Error('one failing handler does not stop the others');
    });
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    off();
    await runInterruptHandlers();
    await runInterruptHandlers();
    expect(calls).toEqual(['first']);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  it('also runs a handler registered while the handlers run (work in flight when the signal came)', async () => {
    const calls: string[] = [];
    onInterrupt(async () => {
      await new Promise((r) => setTimeout(r, 10));
      calls.push('first');
    });
    const pending = runInterruptHandlers();
    onInterrupt(() => void calls.push('late'));
    await pending;
    expect(calls).toEqual(['first', 'late']);
  });

  it('holdSignals keeps the listener installed with no handler registered, until released', () => {
    const before = process.listenerCount('SIGTERM');
    const release = holdSignals();
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    const off = onInterrupt(() => undefined);
    off();
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    release();
    release();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});
