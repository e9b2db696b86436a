/**
 * The main container, seen from the sidecar: the Pod shares one PID namespace
 * (`shareProcessNamespace: true`), and the main container's processes are the ones whose
 * environment carries `ANTHROPIC_WORK_ID=<work id>` (the sidecar's own environment has no
 * `ANTHROPIC_WORK_ID`, and it skips itself anyway). Processes whose environ it may not read are
 * skipped: they are not ours to signal.
 *
 * Stop = SIGTERM to the root(s) of that process tree (the container's entrypoint, which owns its
 * children's shutdown), wait the grace, then SIGKILL every process still matching.
 */
import { sleep } from '../util/sleep.ts';
import type { SidecarLogger } from './log.ts';

// Through getBuiltinModule rather than an ESM import, which evaluates every export (see work-api.ts).
// Synchronous on purpose: /proc reads never touch a disk, and the async API would start libuv's
// thread pool (four threads with their own malloc arenas: megabytes of RSS in every Pod) and
// allocate a buffer per file read, every second.
const { closeSync, openSync, readdirSync, readSync } = process.getBuiltinModule('node:fs');

/** One buffer for every /proc read (environ blocks are small; a longer one is read in pieces). */
const scratch = Buffer.allocUnsafe(64 * 1024);

/** Read a /proc file whole into `scratch` (grown into a fresh buffer if it does not fit). */
function readProcFile(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    let size = 0;
    let buf = scratch;
    for (;;) {
      if (size === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger);
        buf = bigger;
      }
      const n = readSync(fd, buf, size, buf.length - size, null);
      if (n === 0) return buf.subarray(0, size);
      size += n;
    }
  } finally {
    closeSync(fd);
  }
}

export interface MainProcess {
  readonly pid: number;
  readonly ppid: number;
}

/** The roots of a process forest: processes whose parent is not one of them. */
export function treeRoots(processes: readonly MainProcess[]): number[] {
  const pids = new Set(processes.map((p) => p.pid));
  return processes.filter((p) => !pids.has(p.ppid)).map((p) => p.pid);
}

/** Does a NUL-separated environ block hold exactly `entry` (`name=value`) as one of its entries? */
export function environHas(environ: Buffer, entry: Buffer): boolean {
  for (let at = environ.indexOf(entry); at >= 0; at = environ.indexOf(entry, at + 1)) {
    const end = at + entry.length;
    // Whole entry: starts the block or follows a NUL, and ends the block or precedes a NUL.
    if ((at === 0 || environ[at - 1] === 0) && (end === environ.length || environ[end] === 0)) return true;
  }
  return false;
}

/** The parent pid from `/proc/<pid>/stat` (the field after the state, after the `(comm)`). */
export function parentPid(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const ppid = Number(stat.slice(close + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

export interface MainContainerOptions {
  readonly workId: string;
  readonly log: SidecarLogger;
  /** Default `/proc`. */
  readonly procRoot?: string;
  /** Never signalled; default this process. */
  readonly selfPid?: number;
  /** How often a stop checks whether the processes are gone. Default 200 ms. */
  readonly pollMs?: number;
}

export class MainContainer {
  readonly #needle: Buffer;
  readonly #log: SidecarLogger;
  readonly #proc: string;
  readonly #self: number;
  readonly #pollMs: number;
  /** Processes seen at the last look: checked cheaply first, before a full scan of /proc. */
  #known: number[] = [];
  #seen = false;

  constructor(options: MainContainerOptions) {
    this.#needle = Buffer.from(`ANTHROPIC_WORK_ID=${options.workId}`);
    this.#log = options.log;
    this.#proc = options.procRoot ?? '/proc';
    this.#self = options.selfPid ?? process.pid;
    this.#pollMs = options.pollMs ?? 200;
  }

  /** True once any process of the main container has been seen. */
  get seen(): boolean {
    return this.#seen;
  }

  /** Every process of the main container, by a full scan of /proc. */
  processes(): MainProcess[] {
    let entries: string[];
    try {
      entries = readdirSync(this.#proc);
    } catch {
      return [];
    }
    const found: MainProcess[] = [];
    for (const name of entries) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid <= 0 || pid === this.#self) continue;
      const ppid = this.#match(pid);
      if (ppid !== undefined) found.push({ pid, ppid });
    }
    this.#known = found.map((p) => p.pid);
    if (found.length > 0) this.#seen = true;
    return found;
  }

  /**
   * Is any process of the main container running? Re-reads the processes seen last time and
   * scans all of /proc only when none of them is left (a child may have outlived its parent).
   */
  running(): boolean {
    for (const pid of this.#known) if (this.#match(pid) !== undefined) return true;
    return this.processes().length > 0;
  }

  /**
   * Stop the main container: SIGTERM to the root(s) of its process tree, up to `graceMs` for
   * everything to exit, then SIGKILL to whatever still runs. Returns what was signalled.
   */
  async stop(graceMs: number): Promise<{ terminated: number[]; killed: number[] }> {
    const processes = this.processes();
    if (processes.length === 0) return { terminated: [], killed: [] };
    const roots = treeRoots(processes);
    this.#log.info('stopping the main container', { signal: 'SIGTERM', pids: roots, processes: processes.length, grace_seconds: graceMs / 1000 });
    for (const pid of roots) this.#signal(pid, 'SIGTERM');
    const until = Date.now() + graceMs;
    while (Date.now() < until) {
      await sleep(Math.min(this.#pollMs, Math.max(0, until - Date.now())));
      if (this.processes().length === 0) return { terminated: roots, killed: [] };
    }
    const left = this.processes();
    if (left.length === 0) return { terminated: roots, killed: [] };
    const killed = left.map((p) => p.pid);
    this.#log.warn('the main container outlived its grace; killing it', { signal: 'SIGKILL', pids: killed });
    for (const pid of killed) this.#signal(pid, 'SIGKILL');
    // SIGKILL cannot be ignored; wait briefly so the caller sees the container gone.
    for (let i = 0; i < 25 && this.processes().length > 0; i++) await sleep(this.#pollMs);
    return { terminated: roots, killed };
  }

  /** The parent pid when `pid` belongs to the main container; undefined otherwise or when unreadable. */
  #match(pid: number): number | undefined {
    try {
      // A zombie's environ reads empty: it has exited and counts as gone.
      if (!environHas(readProcFile(`${this.#proc}/${pid}/environ`), this.#needle)) return undefined;
      return parentPid(readProcFile(`${this.#proc}/${pid}/stat`).toString('latin1')) ?? 0;
    } catch {
      return undefined;
    }
  }

  #signal(pid: number, signal: 'SIGTERM' | 'SIGKILL'): void {
    try {
      process.kill(pid, signal);
    } catch (err) {
      // ESRCH: it exited meanwhile. EPERM: not ours (another user); nothing we can do.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH') this.#log.warn('could not signal a main container process', { pid, signal, code });
    }
  }
}
