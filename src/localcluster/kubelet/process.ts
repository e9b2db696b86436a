/**
 * One container run as local processes.
 *
 *   sh (wrapper: records the exit code)
 *    └─ reaper --anchor <pid> --   (or setsid when no reaper is given)
 *        └─ unshare --mount --propagation private -- sh -c <mount script>
 *             = the container's process group: bind mounts, cd, environment, then exec of the command
 *
 * - The wrapper survives a kubelet restart and writes the command's exit code (128+signal when
 *   killed) to a file, so a restarted kubelet learns how an adopted container ended.
 * - reaper puts the command in its own process group and SIGKILLs that group when the anchor (the
 *   test run) dies, so no container outlives the run even when the kubelet was SIGKILLed.
 * - Each container gets its own mount namespace; its volumes are bind-mounted at their mountPaths
 *   (readOnly remounted read-only) there and nowhere else. Mount points are created on the host if
 *   missing (the namespace shares the host's file tree). A volume mounted over a directory the
 *   container itself needs from the host (its run files, the repository and Node that play the
 *   image, the other volumes' sources — e.g. an emptyDir at /tmp while all of these live under
 *   /tmp) would hide them, so every source and host path is first bound into a private staging
 *   tmpfs, the volumes are mounted from there, the hidden host paths are bound back at their own
 *   paths, and the staging tmpfs is detached before exec (`mountScript`).
 * - The environment reaches the command through a 0600 file sourced just before exec, never argv;
 *   the wrapper, reaper and mount script run with PATH only, so /proc/<pid>/environ shows the
 *   container's variables on the container's process alone and nothing of the kubelet's own.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_PATH } from './env.ts';

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

export interface LaunchSpec {
  /** Directory for this container's run files (env, pid and exit files). */
  readonly runDir: string;
  /** Distinguishes runs of one container (its restart count). */
  readonly run: number;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
  readonly mounts: readonly Mount[];
  /**
   * Host directories the command needs besides its volumes (the repository and Node that stand in
   * for the image): bound back at their own paths when a volume's mountPath hides them. The run
   * directory always is.
   */
  readonly hostPaths?: readonly string[];
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  /** The reaper binary (test/controlplane/cmd/reaper); without it, setsid. */
  readonly reaper?: string | undefined;
  /** reaper's anchor: the container's process group is SIGKILLed when this pid dies. */
  readonly anchorPid?: number | undefined;
}

/** What a restarted kubelet needs to find a run again (persisted in the Pod's record file). */
export interface RunRecord {
  readonly wrapperPid: number;
  /** Start time of the wrapper in clock ticks since boot (/proc/<pid>/stat field 22): defeats pid reuse. */
  readonly wrapperStartTicks: string;
  readonly pidFile: string;
  readonly exitFile: string;
  readonly envFile: string;
}

/** Where the staging tmpfs goes: the first candidate no volume hides (see {@link mountScript}). */
export const STAGE_CANDIDATES = ['/run/agentenv-process-kubelet/stage', '/var/lib/agentenv-process-kubelet/stage', '/.agentenv-process-kubelet-stage'] as const;

const isWithin = (path: string, dir: string): boolean => dir === '/' || path === dir || path.startsWith(`${dir.replace(/\/+$/, '')}/`);

/** The staging directory for these mounts: not under any mountPath, so no volume hides it. */
export function stageDir(mounts: readonly Mount[]): string {
  const free = STAGE_CANDIDATES.find((c) => !mounts.some((m) => isWithin(c, m.target)));
  if (!free) throw new Error('every staging directory is under a volume mountPath');
  return free;
}

/**
 * The script that runs as the container's process group inside its own mount namespace (pure):
 * 1. a private tmpfs at `stage` (only this namespace sees it);
 * 2. each volume source and each host path bound into it, while nothing hides them yet;
 * 3. the volumes mounted at their mountPaths from the staged copies (readOnly remounted read-only);
 * 4. host paths that a mountPath hid bound back at their own paths;
 * 5. the staging tmpfs detached (the mounts made from it stay);
 * 6. cd, pid file, the environment file, exec.
 * Arguments: pidFile envFile workingDir -- argv…
 */
export function mountScript(stage: string, mounts: readonly Mount[], hostPaths: readonly string[]): string {
  const q = shellQuote;
  const st = (name: string): string => q(`${stage}/${name}`);
  const hidden = [...new Set(hostPaths.map((h) => h.replace(/\/+$/, '')))].filter((h) => h !== '' && mounts.some((m) => isWithin(h, m.target)));
  const lines = ['set -e', `mount -t tmpfs -o mode=0700,size=64k agentenv-stage ${q(stage)}`];
  mounts.forEach((m, i) => lines.push(`if [ -d ${q(m.source)} ]; then mkdir ${st(`v${i}`)}; else : > ${st(`v${i}`)}; fi; mount --bind ${q(m.source)} ${st(`v${i}`)}`));
  hidden.forEach((h, i) => lines.push(`mkdir ${st(`h${i}`)}; mount --bind ${q(h)} ${st(`h${i}`)}`));
  mounts.forEach((m, i) => {
    const t = q(m.target);
    lines.push(`if [ -d ${st(`v${i}`)} ]; then mkdir -p ${t}; else mkdir -p "$(dirname ${t})"; [ -e ${t} ] || : > ${t}; fi; mount --bind ${st(`v${i}`)} ${t}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${t}`);
  });
  hidden.forEach((h, i) => lines.push(`mkdir -p ${q(h)}; mount --bind ${st(`h${i}`)} ${q(h)}`));
  lines.push(`umount -l ${q(stage)}`);
  lines.push('pidfile=$1; envfile=$2; wd=$3; shift 4', 'mkdir -p "$wd"', 'cd "$wd"', 'unset OLDPWD PWD', 'echo $$ > "$pidfile"', 'set +e', '. "$envfile"', 'exec "$@"');
  return `${lines.join('\n')}\n`;
}

const WRAPPER_SCRIPT = 'f=$1; shift; "$@"; echo $? > "$f.tmp"; mv "$f.tmp" "$f"';

/** A shell literal for an environment file (single quotes; a quote becomes '\''). */
const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function envFileContent(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join('');
}

export interface StartedRun {
  readonly record: RunRecord;
  /** Resolves with the exit code once the wrapper ended (the kubelet's own child). */
  readonly exited: Promise<number>;
}

export async function launch(spec: LaunchSpec): Promise<StartedRun> {
  const pidFile = `${spec.runDir}/pid.${spec.run}`;
  const exitFile = `${spec.runDir}/exit.${spec.run}`;
  const envFile = `${spec.runDir}/env`;
  await rm(pidFile, { force: true });
  await rm(exitFile, { force: true });
  // Variable names the shell cannot export are dropped: POSIX programs cannot read them either.
  await writeFile(envFile, envFileContent(spec.env), { mode: 0o600 });
  const guard = spec.reaper ? [spec.reaper, ...(spec.anchorPid ? ['--anchor', String(spec.anchorPid)] : []), '--'] : ['setsid'];
  const stage = stageDir(spec.mounts);
  await mkdir(stage, { recursive: true });
  const script = mountScript(stage, spec.mounts, [spec.runDir, ...(spec.hostPaths ?? [])]);
  const argv = [
    exitFile,
    ...guard,
    'unshare', '--mount', '--propagation', 'private', '--',
    '/bin/sh', '-c', script, 'container', pidFile, envFile, spec.workingDir, '--',
    ...spec.argv,
  ];
  const out = openSync(spec.logFile, 'a');
  let child;
  try {
    child = spawn('/bin/sh', ['-c', WRAPPER_SCRIPT, 'wrapper', ...argv], { stdio: ['ignore', out, out], env: { PATH: DEFAULT_PATH }, detached: true });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the container wrapper');
  const exited = new Promise<number>((resolve) => {
    child.on('exit', () => resolve(readExitCode(exitFile)));
    child.on('error', () => resolve(Promise.resolve(127)));
  });
  child.unref();
  const startTicks = (await processStartTicks(pid)) ?? '0';
  return { record: { wrapperPid: pid, wrapperStartTicks: startTicks, pidFile, exitFile, envFile }, exited };
}

/** The exit code the wrapper recorded; 137 (as if SIGKILLed) when it could not record one. */
export async function readExitCode(exitFile: string): Promise<number> {
  const text = await readFile(exitFile, 'utf8').catch(() => '');
  const code = Number.parseInt(text.trim(), 10);
  return Number.isFinite(code) ? code : 137;
}

/** /proc/<pid>/stat field 22 (start time in ticks); undefined when no such process. */
export async function processStartTicks(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

/** Whether the run's wrapper is still the process we started (same pid and start time). */
export async function wrapperAlive(r: RunRecord): Promise<boolean> {
  const ticks = await processStartTicks(r.wrapperPid);
  if (ticks === undefined || ticks !== r.wrapperStartTicks) return false;
  const stat = await readFile(`/proc/${r.wrapperPid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** The container's process group id (= pid of its command), once the mount script recorded it. */
export async function containerGroup(r: RunRecord, waitMs = 0): Promise<number | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pid = Number.parseInt((await readFile(r.pidFile, 'utf8').catch(() => '')).trim(), 10);
    if (pid > 0) return pid;
    if (Date.now() >= deadline) return undefined;
    await sleep(20);
  }
}

/** Sends `signal` to every process of the container's process group. */
export async function signalContainer(r: RunRecord, signal: NodeJS.Signals): Promise<void> {
  const group = await containerGroup(r);
  if (group === undefined) {
    // Not exec'd yet: the mount script runs in the wrapper's child; kill the wrapper's group instead.
    trySignal(-r.wrapperPid, signal);
    return;
  }
  trySignal(-group, signal);
}

function trySignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

/**
 * Runs `argv` in the container's mount namespace with its environment and working directory (exec
 * probes). Resolves with the exit code, or 124 after `timeoutMs` (the probe's timeoutSeconds).
 */
export async function execInContainer(r: RunRecord, workingDir: string, argv: readonly string[], timeoutMs: number): Promise<number> {
  // A started container is always there to exec into on a real node; here its command records its
  // pid a few milliseconds after the launch, so the first probe waits for that (within its timeout).
  const begun = Date.now();
  const group = await containerGroup(r, timeoutMs);
  if (group === undefined) return 126;
  timeoutMs = Math.max(1, timeoutMs - (Date.now() - begun));
  const script = 'cd "$1" || exit 126; unset OLDPWD PWD; . "$2"; shift 2; exec "$@"';
  const child = spawn('nsenter', ['--target', String(group), '--mount', '--', '/bin/sh', '-c', script, 'probe', workingDir, r.envFile, ...argv], {
    stdio: 'ignore',
    env: { PATH: DEFAULT_PATH },
    detached: true,
  });
  return new Promise<number>((resolve) => {
    const timer = setTimeout(() => {
      if (child.pid) trySignal(-child.pid, 'SIGKILL');
      resolve(124);
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 + 9 : 1));
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve(127);
    });
  });
}
