/**
 * What a Pod's containers should do next, decided from its spec and the kubelet's record of each
 * container (pure; the Pod worker applies it). The rules are the kubelet's:
 *
 * 1. Init containers run one at a time, in order. A plain init container must exit 0 before the next
 *    starts; a native sidecar (`restartPolicy: Always`) must be running and *started* (its startup
 *    probe passed, or it has none) before the next starts, and keeps running.
 * 2. Once every init container is through, the Pod is Initialized (for good: a sidecar restart later
 *    does not undo it) and all regular containers start together.
 * 3. An exited container restarts per the Pod's `restartPolicy` (sidecars: always), each restart
 *    after an exponential back-off; with `Never`, a failed plain init container fails the Pod.
 * 4. When every regular container has exited for good, the sidecars are stopped; the Pod is
 *    Succeeded if all regular containers exited 0, else Failed (sidecars' exit codes do not count).
 */
import { isSidecar, type Pod } from './pod-types.ts';

export type ContainerKind = 'init' | 'sidecar' | 'regular';
export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface Termination {
  readonly exitCode: number;
  readonly startedAt: string;
  readonly finishedAt: string;
}

/** The kubelet's record of one container (persisted under the root dir, so it survives a kubelet restart). */
export interface ContainerRecord {
  restartCount: number;
  /** Present while the container's process runs. */
  running?: { startedAt: string };
  /** The last run's end: the current state when not running, `lastState` once running again. */
  terminated?: Termination;
  /** The run before `terminated` (a finished container's `lastState`). */
  previous?: Termination;
  /** Why it is not running when it never ran (ErrImagePull, CreateContainerConfigError, …). */
  waiting?: { reason: string; message?: string };
  /** Failed image pulls in a row (the first shows ErrImagePull, later ones ImagePullBackOff). */
  pullFailures?: number;
  /** Startup probe passed (or none), for the current run. */
  started: boolean;
  /** Readiness probe passing (or none) and started, for the current run. */
  ready: boolean;
  /** Epoch ms before which the container is not (re)started: restart or image-pull back-off. */
  notBefore?: number;
  /** A plain init container that exited 0. */
  succeeded?: boolean;
}

export interface PodRecord {
  initialized: boolean;
  /** Set once every container is down for good; never changes afterwards. */
  phase?: 'Succeeded' | 'Failed';
  startTime: string;
  podIP: string;
  containers: Record<string, ContainerRecord>;
}

export interface Plan {
  /** Containers to start now, in this order. */
  readonly start: readonly string[];
  /** Every regular container is done (or the Pod failed): stop the sidecars. */
  readonly stopSidecars: boolean;
  readonly initialized: boolean;
  readonly phase: PodPhase;
  /** Earliest back-off expiry that will change the plan (epoch ms). */
  readonly wakeAt?: number;
}

export const RESTART_BACKOFF = { baseMs: 1_000, capMs: 60_000 } as const;

/**
 * Delay before the next start of a container that has restarted `restartCount` times. The real
 * kubelet starts at 10 s and caps at 5 min; a test runtime uses 1 s doubling to 60 s.
 */
export const restartDelayMs = (restartCount: number): number => Math.min(RESTART_BACKOFF.capMs, RESTART_BACKOFF.baseMs * 2 ** Math.min(restartCount, 20));

export const emptyRecord = (): ContainerRecord => ({ restartCount: 0, started: false, ready: false });

/** Whether a container that exited will run again (ignoring back-off). */
export function willRestart(pod: Pod, kind: ContainerKind, exitCode: number): boolean {
  if (kind === 'sidecar') return true;
  const policy = pod.spec.restartPolicy ?? 'Always';
  if (kind === 'init') return exitCode !== 0 && policy !== 'Never';
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}

export function decide(pod: Pod, rec: PodRecord, now: number): Plan {
  const state = (name: string): ContainerRecord => rec.containers[name] ?? emptyRecord();
  if (rec.phase) return { start: [], stopSidecars: true, initialized: rec.initialized, phase: rec.phase };
  const start: string[] = [];
  let wakeAt: number | undefined;
  /** Start `name` unless it is backing off; remember when to look again. */
  const startWhenDue = (name: string): void => {
    const due = state(name).notBefore ?? 0;
    if (due <= now) start.push(name);
    else wakeAt = Math.min(wakeAt ?? due, due);
  };
  const canRun = (name: string): boolean => {
    const r = state(name);
    return !r.running && (r.terminated === undefined || willRestart(pod, kindOf(pod, name), r.terminated.exitCode));
  };

  let initialized = rec.initialized;
  let failed = false;
  if (!initialized) {
    initialized = true;
    for (const c of pod.spec.initContainers ?? []) {
      const r = state(c.name);
      if (isSidecar(c)) {
        if (r.running && r.started) continue;
        if (!r.running) startWhenDue(c.name);
      } else {
        if (r.succeeded) continue;
        if (!r.running && r.terminated && !willRestart(pod, 'init', r.terminated.exitCode)) failed = true;
        else if (!r.running) startWhenDue(c.name);
      }
      initialized = false;
      break;
    }
  }

  let regularDone = false;
  if (initialized && !failed) {
    regularDone = pod.spec.containers.every((c) => {
      const r = state(c.name);
      return !r.running && r.terminated !== undefined && !willRestart(pod, 'regular', r.terminated.exitCode);
    });
    for (const c of pod.spec.containers) if (canRun(c.name)) startWhenDue(c.name);
    if (!regularDone) for (const c of (pod.spec.initContainers ?? []).filter(isSidecar)) if (!state(c.name).running) startWhenDue(c.name);
  }

  if (failed || regularDone) {
    const sidecarsRunning = (pod.spec.initContainers ?? []).some((c) => isSidecar(c) && state(c.name).running);
    const anyFailed = failed || pod.spec.containers.some((c) => (state(c.name).terminated?.exitCode ?? 0) !== 0);
    const phase: PodPhase = sidecarsRunning ? (initialized ? 'Running' : 'Pending') : anyFailed ? 'Failed' : 'Succeeded';
    return { start: [], stopSidecars: true, initialized, phase };
  }
  const anyRegularRan = pod.spec.containers.some((c) => state(c.name).running || state(c.name).terminated);
  return { start, stopSidecars: false, initialized, phase: initialized && anyRegularRan ? 'Running' : 'Pending', ...(wakeAt !== undefined ? { wakeAt } : {}) };
}

export function kindOf(pod: Pod, name: string): ContainerKind {
  const init = (pod.spec.initContainers ?? []).find((c) => c.name === name);
  if (init) return isSidecar(init) ? 'sidecar' : 'init';
  return 'regular';
}
