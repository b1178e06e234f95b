import { spawn } from 'node:child_process';
import { processStart } from '../../core/owner.js';

/** A `sleep` child and its owner tag; `stop` kills it and waits until it is reaped. */
export async function liveProcess(): Promise<{ tag: string; stop: () => Promise<void> }> {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  await new Promise((r) => child.once('spawn', r));
  const tag = `${child.pid}-${processStart(child.pid!)}`;
  const exited = new Promise((r) => child.once('exit', r));
  return { tag, stop: async () => void (child.kill('SIGKILL'), await exited) };
}
