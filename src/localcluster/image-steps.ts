/**
 * Running the image tools (buildah, mmdebstrap, npm, tar) as steps that print what they do: a line
 * when a step starts, the builder's own `STEP …` lines, a line every 30 s while it runs, and its
 * elapsed time when it ends. A failing step's error carries the last lines of its output.
 */
import { spawn } from 'node:child_process';
import { elapsed } from './go-build-cache.ts';

export type Log = (line: string) => void;

export interface RunOptions {
  readonly cwd?: string;
  /** Lines of output echoed to the log: default none. */
  readonly echo?: (line: string) => boolean;
}

/** Runs a command to completion; rejects with the output's tail when it fails. Resolves with stdout. */
export async function runCommand(command: string, args: readonly string[], log: Log, options: RunOptions = {}): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd ? { cwd: options.cwd } : {}) });
  const tail: string[] = [];
  const out: Buffer[] = [];
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (options.echo?.(line)) log(line.length > 200 ? `${line.slice(0, 200)}…` : line);
    }
  };
  child.stdout.on('data', (chunk: Buffer) => {
    out.push(chunk);
    collect(chunk);
  });
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`${command} is not installed (see README "Development": apt-get install -y buildah mmdebstrap runc)`) : err));
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`${command} ${args.slice(0, 3).join(' ')} … failed (exit ${code}):\n${tail.join('\n')}`);
  return Buffer.concat(out).toString();
}

/** Runs `fn` as a named step: start line, a heartbeat every 30 s, and the elapsed time at the end. */
export async function step<T>(label: string, log: Log, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  log(`${label} …`);
  const heartbeat = setInterval(() => log(`${label}: still running (${elapsed(performance.now() - started)})`), 30_000);
  try {
    const result = await fn();
    log(`${label}: done in ${elapsed(performance.now() - started)}`);
    return result;
  } finally {
    clearInterval(heartbeat);
  }
}
