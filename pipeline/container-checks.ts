/**
 * The boot test's container, run in a booted sandbox through Kata's agent
 * API only (so a real kata-agent passes it too): osbuilder's busybox
 * container, with the guest's /etc/os-release bound read-only, memory and
 * pids limits, and an init that reports what it sees, runs while a second
 * process is exec'd into the container, echoes a line from stdin and exits 3.
 * Every fact is checked; a mismatch names what differed.
 */
import { OsbuilderError } from '../core/errors.js';
import { MiB } from '../core/vocab.js';
import { prettyName } from '../rootfs-builder/index.js';
import { bindMount, defaultContainerRootfs, defaultSpec, setRoot, tmpfsMount, type BootSession, type ContainerRootfs } from '../runtime/index.js';

export const BOOT_TEST_LIMITS = { memoryBytes: 256 * MiB, pids: 128 };
export const BOOT_TEST_INIT_STATUS = 3;
export const BOOT_TEST_STDIN = 'ping from the host';

/** Sections of the init's report, one `@@name@@` line before each. */
const INIT_SCRIPT = [
  'echo @@pid@@; echo $$',
  'echo @@hostname@@; hostname',
  'c=$(cut -d: -f3 /proc/self/cgroup)',
  'echo @@memory.max@@; cat /sys/fs/cgroup$c/memory.max',
  'echo @@pids.max@@; cat /sys/fs/cgroup$c/pids.max',
  'echo @@os-release@@; cat /etc/os-release',
  'echo @@guest-os-release@@; cat /guest/os-release',
  'echo @@ready@@',
  'read line; echo @@stdin@@; echo "$line"',
  `exit ${BOOT_TEST_INIT_STATUS}`,
].join('\n');

const EXEC_SCRIPT = ['echo @@pid@@; echo $$', 'echo @@init@@; tr "\\0" " " < /proc/1/cmdline; echo', 'echo @@os-id@@; grep ^ID= /etc/os-release'].join('\n');

export interface ContainerChecks {
  /** The container's pid namespace: its init is pid 1. */
  initPid: number;
  hostname: string;
  memoryMax: number;
  pidsMax: number;
  /** PRETTY_NAME of the container's /etc/os-release (not the guest's). */
  containerOs: string;
  /** PRETTY_NAME of the guest's /etc/os-release, seen through the bind mount. */
  guestOs: string;
  execPid: number;
  execStatus: number;
  initStatus: number;
}

export function sections(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let name: string | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    const m = /^@@([\w.-]+)@@$/.exec(line);
    if (m) {
      name = m[1]!;
      out[name] = '';
    } else if (name !== undefined) {
      out[name] += `${line}\n`;
    }
  }
  return out;
}

function expect(what: string, got: string | number, want: string | number): void {
  if (got !== want)
    throw new OsbuilderError(
      'BOOT_FAILED',
      `boot test: ${what} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
      'the guest cannot run containers as Kata runs them: see the guest console log (osbuilder boot --console-log)',
    );
}

/** Decodes and asserts the container's reports; returns the checks (without the rpcs). */
export function verifyReports(
  init: string,
  exec: string,
  statuses: { init: number; exec: number },
  want: { hostname: string; guestOsRelease: string; containerOsRelease: string },
): ContainerChecks {
  const s = sections(init);
  const e = sections(exec);
  const line = (x: string | undefined) => (x ?? '').trim();
  expect('the init process pid in its pid namespace', line(s.pid), '1');
  expect('the container hostname', line(s.hostname), want.hostname);
  expect("the container cgroup's memory.max", line(s['memory.max']), String(BOOT_TEST_LIMITS.memoryBytes));
  expect("the container cgroup's pids.max", line(s['pids.max']), String(BOOT_TEST_LIMITS.pids));
  expect("the container's /etc/os-release", s['os-release'] ?? '', want.containerOsRelease);
  expect("the guest's /etc/os-release (bound at /guest/os-release)", s['guest-os-release'] ?? '', want.guestOsRelease);
  expect('what the init read from stdin', line(s.stdin), BOOT_TEST_STDIN);
  expect("the init's exit status (WaitProcess)", statuses.init, BOOT_TEST_INIT_STATUS);
  expect("the exec'd process's exit status", statuses.exec, 0);
  if (!/^sh -c /.test(line(e.init))) expect("pid 1 as the exec'd process sees it", line(e.init), 'sh -c …');
  expect("the exec'd process's view of /etc/os-release", line(e['os-id']), 'ID=osbuilder-container');
  const execPid = Number(line(e.pid));
  if (!(execPid > 1)) expect("the exec'd process's pid", line(e.pid), '> 1');
  return {
    initPid: 1,
    hostname: want.hostname,
    memoryMax: BOOT_TEST_LIMITS.memoryBytes,
    pidsMax: BOOT_TEST_LIMITS.pids,
    containerOs: prettyName(want.containerOsRelease),
    guestOs: prettyName(want.guestOsRelease),
    execPid,
    execStatus: statuses.exec,
    initStatus: statuses.init,
  };
}

const text = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('utf8');

/** Runs the container in the sandbox and checks it; `guestOsRelease` is the artifact's rootfs's. */
export async function runContainerChecks(session: BootSession, guestOsRelease: string, container?: ContainerRootfs): Promise<ContainerChecks> {
  const def = container ?? (await defaultContainerRootfs({ arch: session.arch }));
  const spec = defaultSpec({
    args: ['sh', '-c', INIT_SCRIPT],
    hostname: session.hostname,
    memoryLimit: BOOT_TEST_LIMITS.memoryBytes,
    pidsLimit: BOOT_TEST_LIMITS.pids,
  });
  setRoot(spec, def.path, true);
  spec.Mounts.push(tmpfsMount('/tmp'), bindMount('/etc/os-release', '/guest/os-release'));
  const c = await session.sandbox.createContainer('osb-boot-test', { spec, readonlyRootfs: true, guestSources: new Set(['/etc/os-release']) });
  try {
    await c.start();
    const out: Uint8Array[] = [];
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    const reading = c.init.drain('stdout', (b) => {
      out.push(b);
      if (text(out).includes('@@ready@@')) ready();
    });
    const stderr = c.init.drain('stderr', () => undefined);
    await Promise.race([isReady, reading]);
    const execOut: Uint8Array[] = [];
    const p = await c.exec('osb-boot-test-exec', { ...spec.Process!, Args: ['sh', '-c', EXEC_SCRIPT] });
    const execStatus = await p.run({ onStdout: (b) => execOut.push(b) });
    await c.init.feed(Buffer.from(`${BOOT_TEST_STDIN}\n`));
    await Promise.all([reading, stderr]);
    const initStatus = await c.init.wait();
    return verifyReports(
      text(out),
      text(execOut),
      { init: initStatus, exec: execStatus },
      { hostname: session.hostname, guestOsRelease, containerOsRelease: def.osRelease },
    );
  } finally {
    await c.remove().catch(() => undefined);
  }
}
