/**
 * QMP, QEMU's monitor protocol, as kata-runtime uses it to stop a VM: connect
 * to the socket, accept the greeting, qmp_capabilities, then one command.
 */
import { connect } from 'node:net';
import { OsbuilderError } from '../core/errors.js';

/** Runs one QMP command; resolves with its "return" value. */
export function qmpCommand(socket: string, execute: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    let stage = 0;
    const timer = setTimeout(() => finish(new OsbuilderError('QMP_FAILED', `QMP ${execute}: no answer within ${timeoutMs} ms`, 'QEMU is hung: it will be killed')), timeoutMs);
    const finish = (err?: Error, value?: unknown) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const send = (cmd: string, a?: Record<string, unknown>) => s.write(JSON.stringify({ execute: cmd, ...(a ? { arguments: a } : {}) }) + '\n');
    s.on('error', (e) => finish(new OsbuilderError('QMP_FAILED', `QMP ${socket}: ${e.message}`, 'QEMU is not running or has no QMP socket')));
    s.on('close', () => finish(stage === 2 && execute === 'quit' ? undefined : new OsbuilderError('QMP_FAILED', `QMP ${socket} closed before ${execute} was answered`, '')));
    s.on('data', (d) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl)) as { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        buf = buf.slice(nl + 1);
        if (msg.event) continue;
        if (msg.error) return finish(new OsbuilderError('QMP_FAILED', `QMP ${execute}: ${msg.error.desc ?? 'error'}`, ''));
        if (stage === 0 && msg.QMP) {
          stage = 1;
          send('qmp_capabilities');
        } else if (stage === 1 && 'return' in msg) {
          stage = 2;
          send(execute, args);
        } else if (stage === 2 && 'return' in msg) {
          return finish(undefined, msg.return);
        }
      }
    });
  });
}
