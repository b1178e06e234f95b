/**
 * One QEMU process and its guest: start it, tee the console to a log while
 * watching for a kernel panic, wait for the agent (connect with backoff,
 * bounded by a deadline; no fixed sleeps), and always kill QEMU in the end —
 * on errors and on SIGINT/SIGTERM too.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect } from 'node:net';
import type { ResultPromise } from 'execa';
import { internalError, OsbuilderError } from '../core/errors.js';
import { onInterrupt } from '../core/cleanup.js';
import { debug } from '../core/log.js';
import { diesWithUs, formatCommand, start } from '../core/exec.js';
import { AgentClient, AgentService, SERVING_STATUS, type RpcObserver } from './agent-client.js';
import { qmpCommand } from './qmp.js';
import { RpcError, TtrpcClient } from './ttrpc.js';
import type { AgentChannel, QemuPlan } from './qemu.js';

export interface VmOptions {
  plan: QemuPlan;
  channel: AgentChannel;
  /** Console output is appended here as well (a file path). */
  consoleLog?: string;
  /** Host-side helper for vsock (Node has no AF_VSOCK): our agent binary in --connect mode. */
  vsockRelay?: string;
  /** QEMU's QMP socket (the plan's -qmp): how a VM that does not power off is stopped. */
  qmpSocket?: string;
  onConsole?: (text: string) => void;
  /** Sees every RPC the agent client sends. */
  observe?: RpcObserver;
}

export interface VmExit {
  code: number | null;
  signal: string | null;
}

// A complete line; once QEMU is gone an unfinished one counts too (panic=1 ends the VM).
const PANIC_LINE = /Kernel panic - not syncing[^\n]*\n/;
const PANIC_ANY = /Kernel panic - not syncing[^\n]*/;
const TAIL_BYTES = 64 * 1024;
/** dm-verity found a block whose hash does not match the tree (or the tree not the root hash). */
const VERITY_LINE = /device-mapper: verity: [^\n]*corrupted[^\n]*\n/;

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Vm {
  readonly startedAt: number;
  readonly exited: Promise<VmExit>;
  private proc: ResultPromise;
  private tail = '';
  private stderr = '';
  private log: WriteStream | undefined;
  private exit: VmExit | undefined;
  private panic: string | undefined;
  private verity: string | undefined;
  private consoleWaiters = new Set<() => void>();
  private unregister: () => void;
  private agent: AgentClient | undefined;

  private constructor(readonly options: VmOptions) {
    const { plan } = options;
    debug(`$ ${formatCommand(plan.cmd, plan.args)} &`);
    this.startedAt = performance.now();
    this.proc = start(...diesWithUs(plan.cmd, plan.args), { reject: false, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: false });
    this.unregister = onInterrupt(() => this.kill());
    if (options.consoleLog) {
      this.log = createWriteStream(options.consoleLog, { flags: 'w' });
      this.log.on('error', (e) => debug(`console log ${options.consoleLog}: ${e.message}`));
    }
    this.proc.stdout!.on('data', (d: Buffer) => this.onConsole(d.toString('utf8')));
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-TAIL_BYTES);
    });
    this.exited = this.proc.then(
      (r) => {
        this.exit = { code: r.exitCode ?? null, signal: r.signal ?? null };
        this.panic ??= PANIC_ANY.exec(this.tail)?.[0].trim();
        this.wake();
        return this.exit;
      },
      () => {
        this.exit = { code: null, signal: null };
        this.wake();
        return this.exit;
      },
    );
  }

  static start(options: VmOptions): Vm {
    return new Vm(options);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  private wake(): void {
    for (const w of [...this.consoleWaiters]) w();
  }

  private onConsole(text: string): void {
    const clean = text.replace(/\r/g, '');
    this.log?.write(clean);
    this.options.onConsole?.(clean);
    this.tail = (this.tail + clean).slice(-TAIL_BYTES);
    if (!this.panic) {
      const m = PANIC_LINE.exec(this.tail);
      if (m) this.panic = m[0].trim();
    }
    this.verity ??= VERITY_LINE.exec(this.tail)?.[0].trim();
    this.wake();
  }

  /** The last `n` non-empty console lines. */
  consoleTail(n = 25): string {
    return this.tail
      .split('\n')
      .filter((l) => l.trim())
      .slice(-n)
      .join('\n');
  }

  get panicLine(): string | undefined {
    return this.panic;
  }

  /** The first dm-verity corruption report on the console, if any. */
  get verityLine(): string | undefined {
    return this.verity;
  }

  /** The root image failed dm-verity: what went wrong after it (`then`) is a consequence. */
  verityError(then: string): OsbuilderError | undefined {
    if (!this.verity) return undefined;
    return new OsbuilderError(
      'VERITY_FAILED',
      `dm-verity verification of the root image failed: ${this.verity}\n${then}\nlast console lines:\n${this.consoleTail()}`,
      'the image does not match kernel_verity_params (modified after it was built, or the parameters belong to another build): rebuild it, and use the root_hash_<variant>.txt written with it',
    );
  }

  /** The error to report when the guest is gone or panicked (undefined while all is well). */
  failure(what: string): OsbuilderError | undefined {
    const logHint = this.options.consoleLog ? `full console log: ${this.options.consoleLog}` : 'rerun with --console-log FILE to keep the whole console';
    if ((this.panic || this.exit) && this.verity)
      return this.verityError(this.panic ? `then a kernel panic ${what}: ${this.panic}` : `then QEMU stopped ${what}`);
    if (this.panic) {
      return new OsbuilderError(
        'BOOT_FAILED',
        `kernel panic ${what}: ${this.panic}\nlast console lines:\n${this.consoleTail()}`,
        `check the kernel config and root device, and that the guest's init (the agent) keeps running; ${logHint}`,
      );
    }
    if (this.exit) {
      const how = this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
      const err = this.stderr.trim().split('\n').slice(-10).join('\n');
      const con = this.consoleTail();
      return new OsbuilderError(
        'BOOT_FAILED',
        `QEMU ${how} ${what}${err ? `:\n${err}` : ''}${con ? `\nlast console lines:\n${con}` : '\n(the guest wrote nothing to the console)'}`,
        `check the QEMU arguments (--debug shows them) and the guest; ${logHint}`,
      );
    }
    return undefined;
  }

  /** Resolves at the first console match (ms since start); rejects on panic/exit/deadline. */
  waitForConsole(re: RegExp, deadline: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (re.test(this.tail)) return done(() => resolve(performance.now() - this.startedAt));
        const f = this.failure(`before "${re.source}" appeared on the console`);
        if (f) return done(() => reject(f));
        if (performance.now() >= deadline) return done(() => reject(this.timeoutError(`"${re.source}" did not appear on the console`, deadline)));
      };
      const timer = setTimeout(check, Math.max(0, deadline - performance.now()));
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.consoleWaiters.delete(check);
        fn();
      };
      this.consoleWaiters.add(check);
      check();
    });
  }

  private timeoutError(what: string, deadline: number): OsbuilderError {
    const secs = ((deadline - this.startedAt) / 1000).toFixed(1);
    const verity = this.verityError(`then ${what} within ${secs}s`);
    if (verity) return verity;
    const con = this.consoleTail();
    return new OsbuilderError(
      'BOOT_TIMEOUT',
      `${what} within ${secs}s${con ? `\nlast console lines:\n${con}` : '\n(the guest wrote nothing to the console)'}`,
      'raise --timeout (TCG boots are slow); check that the guest starts the agent (AGENT_INIT=yes, or kata-agent.service) and that the kernel has virtio-serial/vsock built in',
    );
  }

  /** One attempt to open the agent channel. */
  private async openChannel(): Promise<TtrpcClient> {
    const ch = this.options.channel;
    if (ch.kind === 'serial') {
      const socket = await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
        const s = connect(ch.socket);
        s.once('connect', () => {
          s.removeListener('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
      return TtrpcClient.fromDuplex(socket, () => socket.destroy());
    }
    if (!this.options.vsockRelay) throw internalError('vsock channel without a relay binary');
    const relay = start(this.options.vsockRelay, ['--connect', `vsock:${ch.cid}:1024`], {
      reject: false,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'ignore',
      buffer: false,
    });
    void relay.catch(() => undefined);
    return new TtrpcClient(relay.stdout!, relay.stdin!, () => relay.kill('SIGKILL'));
  }

  /**
   * Waits until grpc.Health/Check says SERVING. Connects with backoff (the
   * socket appears when QEMU is up; over vsock, when the agent listens),
   * everything bounded by `deadline` (performance.now() ms).
   */
  async waitForAgent(deadline: number): Promise<{ client: AgentClient; readyMs: number }> {
    let backoff = 10;
    let stop: (() => void) | undefined;
    const failed = new Promise<never>((_, reject) => {
      const check = () => {
        const f = this.failure('before the agent answered');
        if (f) {
          this.consoleWaiters.delete(check);
          reject(f);
        }
      };
      stop = () => this.consoleWaiters.delete(check);
      this.consoleWaiters.add(check);
      check();
    });
    failed.catch(() => undefined);
    try {
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) throw this.failure('before the agent answered') ?? this.timeoutError('the agent did not answer', deadline);
        let ttrpc: TtrpcClient | undefined;
        try {
          ttrpc = await Promise.race([this.openChannel(), failed]);
          const client = new AgentClient(ttrpc, this.options.observe);
          const status = await Promise.race([client.check(Math.max(1, deadline - performance.now())), failed]);
          if (status === SERVING_STATUS.SERVING) {
            this.agent = client;
            return { client, readyMs: performance.now() - this.startedAt };
          }
          ttrpc.close();
        } catch (err) {
          ttrpc?.close();
          const f = this.failure('before the agent answered');
          if (f) throw f;
          if (err instanceof OsbuilderError && err.code === 'BOOT_TIMEOUT') throw this.timeoutError('the agent did not answer', deadline);
          debug(`agent not reachable yet: ${(err as Error).message}`);
        }
        const wait = Math.min(backoff, Math.max(0, deadline - performance.now()));
        await Promise.race([delay(wait), failed]);
        backoff = Math.min(backoff * 2, 250);
      }
    } finally {
      stop?.();
    }
  }

  /**
   * Stops the VM as kata-runtime does: DestroySandbox (the agent kills what is
   * left and powers the guest off), then QMP quit when QEMU does not exit
   * within the grace, SIGKILL as the last resort. 'clean' = the guest powered
   * off; 'quit' = QMP stopped it; 'killed'.
   */
  async shutdown(graceMs = 10_000): Promise<'clean' | 'quit' | 'killed'> {
    if (this.exit) return 'clean';
    if (this.agent) {
      let refused = false;
      try {
        await Promise.race([this.agent.call(AgentService.method.destroySandbox, {}, { timeoutMs: Math.min(graceMs, 10_000) }), this.exited]);
      } catch (err) {
        refused = err instanceof RpcError;
        debug(`DestroySandbox: ${(err as Error).message}`);
      }
      this.agent.close();
      if (!refused && (await this.exitsWithin(graceMs))) return 'clean';
    }
    if (this.options.qmpSocket && !this.exit) {
      try {
        await qmpCommand(this.options.qmpSocket, 'quit');
        if (await this.exitsWithin(5000)) return 'quit';
      } catch (err) {
        debug(`QMP quit: ${(err as Error).message}`);
      }
    }
    await this.kill();
    return 'killed';
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    return exited;
  }

  /** Kills QEMU (SIGKILL) if it still runs and waits for it; idempotent. */
  async kill(): Promise<void> {
    this.agent?.close();
    if (!this.exit) this.proc.kill('SIGKILL');
    await this.exited;
    this.unregister();
    await new Promise<void>((r) => (this.log ? this.log.end(() => r()) : r()));
  }
}
