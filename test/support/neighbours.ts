/**
 * vitest globalSetup of the integration project: every integration test runs
 * beside neighbours that are not ours — a sleeping QEMU and a running
 * container, named unlike anything osbuilder starts. Teardown checks that
 * both are still alive (no cleanup of ours, no `cache prune`, no test may
 * touch what it did not start), stops them, and records the verdict in
 * .test-out/neighbours.json for scripts/test-summary.mjs.
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tag = `neighbour-decoy-${process.pid}`;
const image = `neighbour-decoy:${process.pid}`;
const report = join(process.cwd(), '.test-out', 'neighbours.json');
let qemu: ChildProcess | undefined;

async function startQemu(): Promise<ChildProcess> {
  // No guest at all: a paused machine with no devices, as idle as a VM gets.
  const child = spawn('qemu-system-x86_64', ['-name', tag, '-machine', 'none', '-nodefaults', '-display', 'none', '-S'], { stdio: 'ignore', detached: true });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return child;
}

async function startContainer(): Promise<void> {
  // No registry: an image of one static busybox, imported locally.
  const dir = await mkdtemp(join(tmpdir(), 'neighbour-'));
  try {
    await mkdir(join(dir, 'bin'));
    await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
    const tar = execa('tar', ['-C', dir, '-c', '.'], { buffer: { stdout: false } });
    const imp = execa('docker', ['import', '-', image], { stdin: 'pipe' });
    tar.stdout!.pipe(imp.stdin!);
    await Promise.all([tar, imp]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await execa('docker', ['run', '-d', '--name', tag, '--label', 'neighbour=decoy', image, '/bin/busybox', 'sleep', '86400']);
}

async function qemuAlive(child: ChildProcess | undefined): Promise<boolean> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return false;
  const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/\) Z /.test(stat);
}

async function containerAlive(): Promise<boolean> {
  const r = await execa('docker', ['inspect', '--format', '{{.State.Running}}', tag], { reject: false });
  return r.exitCode === 0 && r.stdout.trim() === 'true';
}

export async function setup(): Promise<void> {
  await mkdir(join(process.cwd(), '.test-out'), { recursive: true });
  await rm(report, { force: true });
  qemu = await startQemu();
  await startContainer();
}

export async function teardown(): Promise<void> {
  const verdict = { qemu: await qemuAlive(qemu), container: await containerAlive() };
  if (qemu && verdict.qemu) {
    const exited = new Promise((r) => qemu!.once('exit', r));
    qemu.kill('SIGKILL');
    await exited;
  }
  await execa('docker', ['rm', '-f', tag], { reject: false });
  await execa('docker', ['rmi', '-f', image], { reject: false });
  await writeFile(report, `${JSON.stringify({ neighbours: { qemu: tag, container: tag }, alive: verdict })}\n`);
  if (!verdict.qemu || !verdict.container) {
    throw new Error(`a neighbour the tests did not start was stopped during the run: ${JSON.stringify(verdict)}`);
  }
}
