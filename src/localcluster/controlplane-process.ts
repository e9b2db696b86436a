/**
 * Child processes of the local cluster. Every one is started through `reaper` (test/controlplane/cmd/reaper),
 * which sets PR_SET_PDEATHSIG(SIGKILL) and then exec()s the real command: when the process that started
 * the cluster dies — even by SIGKILL, when no exit handler runs — the kernel kills its children, so no
 * etcd or kube-apiserver outlives a test run.
 *
 * The death signal is tied to the starting *thread*; Node spawns children from its main thread, which
 * lives as long as the process.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or 128+signal) once the process ended. */
  readonly exited: Promise<number>;
  /** Whether the process is still running. */
  running(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs` (default 10 s); resolves once it ended. */
  stop(graceMs?: number): Promise<void>;
  /** Send `signal` at once (a crash when SIGKILL); resolves once it ended. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface StartOptions {
  /** The reaper binary. */
  readonly reaper: string;
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

export function startProcess(name: string, command: string, args: readonly string[], options: StartOptions): ManagedProcess {
  const out = openSync(options.logFile, 'a');
  let child;
  try {
    child = spawn(options.reaper, ['--', command, ...args], {
      stdio: ['ignore', out, out],
      env: options.env ?? process.env,
      // Own process group: a terminal's Ctrl-C (SIGINT to the foreground group) must reach only the
      // program that owns the cluster, which then stops its clients before the control plane. If
      // the control plane got it too, etcd would be gone while the operator releases its Lease.
      // The reaper's parent-death signal still kills the component if its owner dies.
      detached: true,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${name} (${command})`);
  let done = false;
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      resolve(code ?? 128 + signalNumber(signal));
    });
    child.on('error', () => {
      done = true;
      resolve(127);
    });
  });
  return {
    name,
    pid,
    logFile: options.logFile,
    exited,
    running: () => !done,
    async stop(graceMs = 10_000) {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill(signal) {
      if (done) return;
      child.kill(signal);
      await exited;
    },
  };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2 };
  return (signal && numbers[signal]) ?? 0;
}

/** Whether a process with this pid exists (signal 0 probes without sending). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('could not allocate a port');
  return address.port;
}

/** The last lines of a log file, to explain why a component did not come up. */
export function logTail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `check` until it returns true. Fails early when `process` exits (with its log tail) and after
 * `timeoutMs` (default 60 s).
 */
export async function waitUntilReady(what: string, check: () => Promise<boolean>, options: { process?: ManagedProcess; timeoutMs?: number; intervalMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let lastError = '';
  for (;;) {
    if (options.process && !options.process.running()) {
      throw new Error(`${what}: ${options.process.name} exited (code ${await options.process.exited}). Log ${options.process.logFile}:\n${logTail(options.process.logFile)}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      const log = options.process ? `\nLog ${options.process.logFile}:\n${logTail(options.process.logFile)}` : '';
      throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}${log}`);
    }
    await sleep(options.intervalMs ?? 200);
  }
}
