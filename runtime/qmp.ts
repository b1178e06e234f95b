/**
 * QMP, QEMU's monitor protocol, as kata-runtime uses it: connect to the
 * socket, accept the greeting, qmp_capabilities, then commands, one at a
 * time, with the events QEMU sends in between (DEVICE_DELETED for an unplug).
 */
import { connect, type Socket } from 'node:net';
import { OsbuilderError } from '../core/errors.js';

interface QmpMessage {
  QMP?: unknown;
  return?: unknown;
  error?: { class?: string; desc?: string };
  event?: string;
  data?: Record<string, unknown>;
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

function failed(what: string, desc: string, hint = ''): OsbuilderError {
  return new OsbuilderError('QMP_FAILED', `QMP ${what}: ${desc}`, hint);
}

export class QmpSession {
  private buf = '';
  private waiting: Array<(m: QmpMessage) => void> = [];
  private events: QmpEvent[] = [];
  private eventWaiters = new Set<() => void>();
  private closed: OsbuilderError | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d.toString('utf8')));
    socket.on('close', () => this.fail(failed(path, 'the connection closed')));
    socket.on('error', (e) => this.fail(failed(path, e.message, 'QEMU is not running or has no QMP socket')));
  }

  /** Connects, takes the greeting and negotiates capabilities. */
  static async open(path: string, timeoutMs = 5000): Promise<QmpSession> {
    const socket = connect(path);
    const s = new QmpSession(socket, path);
    try {
      await s.next('the greeting', timeoutMs);
      await s.execute('qmp_capabilities', undefined, timeoutMs);
      return s;
    } catch (err) {
      s.close();
      throw err;
    }
  }

  private onData(text: string): void {
    this.buf += text;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: QmpMessage;
      try {
        msg = JSON.parse(line) as QmpMessage;
      } catch {
        this.fail(failed(this.path, `not JSON: ${line.slice(0, 200)}`));
        return;
      }
      if (msg.event) {
        this.events.push({ event: msg.event, data: msg.data ?? {} });
        for (const w of [...this.eventWaiters]) w();
      } else this.waiting.shift()?.(msg);
    }
  }

  private fail(err: OsbuilderError): void {
    this.closed ??= err;
    for (const w of this.waiting.splice(0)) w({ error: { desc: err.message } });
    for (const w of [...this.eventWaiters]) w();
  }

  private next(what: string, timeoutMs: number): Promise<QmpMessage> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(failed(what, `no answer within ${timeoutMs} ms`, 'QEMU is hung: it will be killed')), timeoutMs);
      this.waiting.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }

  /** Runs one command; resolves with its "return" value, rejects with QEMU's error description. */
  async execute(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
    const reply = this.next(command, timeoutMs);
    this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
    const m = await reply;
    if (m.error) throw failed(command, m.error.desc ?? m.error.class ?? 'error');
    return m.return;
  }

  /** The first event (since the session opened) that `match` accepts, waiting up to `timeoutMs`. */
  waitEvent(match: (e: QmpEvent) => boolean, what: string, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(failed(what, `no event within ${timeoutMs} ms`))), timeoutMs);
      const check = () => {
        const hit = this.events.find(match);
        if (hit) done(() => resolve(hit));
        else if (this.closed) done(() => reject(this.closed));
      };
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.eventWaiters.delete(check);
        fn();
      };
      this.eventWaiters.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Runs one QMP command on a fresh connection; resolves with its "return" value. */
export async function qmpCommand(socket: string, execute: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  const s = await QmpSession.open(socket, timeoutMs);
  try {
    return await s.execute(execute, args, timeoutMs);
  } catch (err) {
    // quit: QEMU may close the socket before it answers.
    if (execute === 'quit' && err instanceof OsbuilderError && /closed/.test(err.message)) return undefined;
    throw err;
  } finally {
    s.close();
  }
}
