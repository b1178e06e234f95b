/**
 * One registry of things to undo when the process is interrupted: temp files,
 * containers, QEMU processes. Handlers run once, newest first, on SIGINT/SIGTERM
 * and are removed by their owner when no longer needed.
 */
type Handler = () => void | Promise<void>;

const handlers = new Set<Handler>();
let installed = false;

export function onInterrupt(handler: Handler): () => void {
  install();
  handlers.add(handler);
  return () => handlers.delete(handler);
}

export async function runInterruptHandlers(): Promise<void> {
  const list = [...handlers].reverse();
  handlers.clear();
  for (const h of list) {
    try {
      await h();
    } catch {
      // Best effort: one failing cleanup must not stop the others.
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\ninterrupted (${signal}): cleaning up\n`);
      void runInterruptHandlers().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}
