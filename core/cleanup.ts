/**
 * One registry of things to undo when the process is interrupted: temp files,
 * containers, QEMU processes. On SIGINT/SIGTERM the handlers run once, newest
 * first, then the children still running are stopped and reaped, then the
 * process exits 130/143. Signal listeners are installed only
 * while at least one handler is registered or a command holds them (the CLI
 * does for its whole run: a signal that lands between starting a child and
 * registering its handler must not kill us with the default action).
 */
import { stopChildren } from './children.js';

type Handler = () => void | Promise<void>;

const handlers = new Set<Handler>();
const signals = ['SIGINT', 'SIGTERM'] as const;
/**
 * Set once a signal arrived: our listener then stays installed until exit.
 * Without it, execa's signal-exit finds itself the last listener while we
 * clean up, re-raises the signal and kills us before the handlers finish.
 */
let arrived: NodeJS.Signals | undefined;
let holds = 0;
/** Called just before an interrupted process exits, by whoever holds the signals. */
const lastWords = new Set<(signal: NodeJS.Signals) => void>();

/** The signal that interrupted this process, once one arrived. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return arrived;
}

export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 130 : 143;
}

function onSignal(signal: NodeJS.Signals): void {
  if (arrived) return;
  arrived = signal;
  process.stderr.write(`\ninterrupted (${signal}): cleaning up\n`);
  // Exit only once every child we started has been reaped (core/children.ts).
  void runInterruptHandlers()
    .then(() => stopChildren())
    .finally(() => {
      for (const say of lastWords) say(signal);
      process.exit(signalExitCode(signal));
    });
}

function sync(): void {
  for (const s of signals) {
    const listening = process.listeners(s).includes(onSignal);
    const want = handlers.size > 0 || arrived !== undefined || holds > 0;
    if (want && !listening) process.on(s, onSignal);
    if (!want && listening) process.off(s, onSignal);
  }
}

export function onInterrupt(handler: Handler): () => void {
  handlers.add(handler);
  sync();
  return () => {
    handlers.delete(handler);
    sync();
  };
}

/**
 * Keeps the signal listeners installed until the returned release is called.
 * `onExit` runs (until then) just before an interrupted process exits.
 */
export function holdSignals(onExit?: (signal: NodeJS.Signals) => void): () => void {
  holds++;
  if (onExit) lastWords.add(onExit);
  sync();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holds--;
    if (onExit) lastWords.delete(onExit);
    sync();
  };
}

/**
 * Runs (and forgets) every registered handler; also used when a command fails.
 * Work still in flight may register handlers while these run (a container
 * created just before the signal): they run too, until none is left.
 */
export async function runInterruptHandlers(): Promise<void> {
  while (handlers.size > 0) {
    const list = [...handlers].reverse();
    handlers.clear();
    sync();
    for (const h of list) {
      try {
        await h();
      } catch {
        // Best effort: one failing cleanup must not stop the others.
      }
    }
  }
}
