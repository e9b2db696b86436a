/**
 * Reading a session Pod (pure): which container is the main one, whether it ran, how it ended,
 * and whether the Pod can still start. The decisions in `controller/decide.ts` are phrased in these terms.
 */
import { SIDECAR_EXIT_LEASE_LOST, SIDECAR_EXIT_STOPPED_BY_API } from '../../contract/sidecar.ts';
import type { ContainerStatus, Pod } from './pod-types.ts';
import { MAIN_CONTAINER_NAME, SIDECAR_NAME } from './pod.ts';

/** Container `waiting` reasons that mean the image will not be pulled without a change. */
const IMAGE_PULL_FAILURES = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);

export interface PodView {
  readonly name: string;
  /** The Pod is being deleted (evicted by the API, deleted by a user, or by us). */
  readonly deleting: boolean;
  /** When its deletion was requested (ms; `deletionTimestamp` minus the grace period, to the second). */
  readonly deletionRequestedAt: number | undefined;
  /** Succeeded or Failed: every container has ended. */
  readonly finished: boolean;
  /** `status.reason` Evicted (node pressure, preemption). */
  readonly evicted: boolean;
  /** The main container has started at some point. */
  readonly mainStarted: boolean;
  /** When the main container started, if it did. */
  readonly mainStartedAt: string | undefined;
  /** The main container's termination, if it has ended. */
  readonly mainExit: { readonly exitCode: number; readonly finishedAt: string | undefined; readonly reason: string | undefined } | undefined;
  /** A container's image cannot be pulled: `<container>: <reason>: <message>`. */
  readonly imagePullFailure: string | undefined;
  /** The Pod is bound to a node. */
  readonly scheduled: boolean;
  /** The scheduler reported that no node fits: its message. */
  readonly unschedulable: string | undefined;
  /**
   * Since when (ms) the sidecar has been asking the main container to end: the sidecar has
   * started and reports not ready while the main container still runs. Undefined otherwise.
   * See {@link stopDueSince} for the clock.
   */
  readonly stopDueSince: number | undefined;
  /**
   * The sidecar ended saying it had lost the lease (exit code `SIDECAR_EXIT_LEASE_LOST`): the item
   * belongs to the queue or another worker, and must not be stopped from here.
   */
  readonly sidecarLostLease: boolean;
  /**
   * How the sidecar said the lease ended, by its exit code (`SIDECAR_EXIT_*` in the contract):
   * `session` (0: the session ended it), `api` (the API ordered the stop first), `lost`, `other`
   * (killed or crashed: it says nothing); `running` while it has not ended; undefined when the Pod
   * shows no sidecar at all.
   */
  readonly sidecarEnd: SidecarEnd | undefined;
}

export type SidecarEnd = 'running' | 'session' | 'api' | 'lost' | 'other';

/** The template's main container: the one named `session`, else the first. */
export function mainContainerName(pod: Pod): string {
  const containers = pod.spec?.containers ?? [];
  return (containers.find((c) => c.name === MAIN_CONTAINER_NAME) ?? containers[0])?.name ?? MAIN_CONTAINER_NAME;
}

export function viewPod(pod: Pod): PodView {
  const status = pod.status ?? {};
  const main = mainContainerName(pod);
  const all: ContainerStatus[] = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])];
  const mainStatus = (status.containerStatuses ?? []).find((c) => c.name === main);
  const terminated = mainStatus?.state?.terminated;
  const pull = all.find((c) => c.state?.waiting?.reason && IMAGE_PULL_FAILURES.has(c.state.waiting.reason));
  const scheduled = (status.conditions ?? []).find((c) => c.type === 'PodScheduled');
  return {
    name: pod.metadata?.name ?? '',
    deleting: Boolean(pod.metadata?.deletionTimestamp),
    deletionRequestedAt: deletionRequestedAt(pod),
    finished: status.phase === 'Succeeded' || status.phase === 'Failed',
    evicted: status.reason === 'Evicted',
    mainStarted: Boolean(mainStatus?.state?.running || terminated || mainStatus?.started),
    mainStartedAt: mainStatus?.state?.running?.startedAt ?? terminated?.startedAt,
    mainExit: terminated ? { exitCode: terminated.exitCode, finishedAt: terminated.finishedAt, reason: terminated.reason } : undefined,
    imagePullFailure: pull ? `${pull.name}: ${pull.state!.waiting!.reason}${pull.state!.waiting!.message ? `: ${pull.state!.waiting!.message}` : ''}` : undefined,
    scheduled: Boolean(pod.spec?.nodeName),
    unschedulable: scheduled?.status === 'False' && scheduled.reason === 'Unschedulable' ? (scheduled.message ?? 'no node fits the Pod') : undefined,
    stopDueSince: stopDueSince(pod, mainStatus),
    sidecarLostLease: sidecarEnd(pod) === 'lost',
    sidecarEnd: sidecarEnd(pod),
  };
}

/** The sidecar's exit code, read as the contract defines it (`SIDECAR_EXIT_*`). */
function sidecarEnd(pod: Pod): SidecarEnd | undefined {
  const sidecar = (pod.status?.initContainerStatuses ?? []).find((c) => c.name === SIDECAR_NAME);
  if (!sidecar) return undefined;
  const code = sidecar.state?.terminated?.exitCode;
  if (code === undefined) return 'running';
  if (code === 0) return 'session';
  if (code === SIDECAR_EXIT_STOPPED_BY_API) return 'api';
  return code === SIDECAR_EXIT_LEASE_LOST ? 'lost' : 'other';
}

/**
 * The sidecar's "end now", read from the Pod status (the sidecar has no Kubernetes API access, so
 * its readiness is how it speaks): it has started (its startup probe passed: the lease was
 * claimed) and is `ready: false`, while the main container runs.
 *
 * The clock is the Pod's `ContainersReady=False` (or `Ready=False`) lastTransitionTime — written by
 * the kubelet when the first container went unready, so it survives an operator restart and needs
 * no status write of ours — but never earlier than the start of the sidecar's or the main container's current run:
 * the sidecar is not ready for up to a readiness period after it starts, and a condition that was
 * already False for another reason (a template container's own readiness probe) must not shorten
 * the grace of a stop that came later. Without the condition (a kubelet that does not write it),
 * the later of the two starts.
 */
function stopDueSince(pod: Pod, main: ContainerStatus | undefined): number | undefined {
  const status = pod.status ?? {};
  const sidecar = (status.initContainerStatuses ?? []).find((c) => c.name === SIDECAR_NAME);
  if (!sidecar?.started || sidecar.ready !== false || !sidecar.state?.running || !main?.state?.running) return undefined;
  // ContainersReady and Ready both: a kubelet that leaves restartable init containers out of
  // ContainersReady (the process kubelet) still flips Ready when the sidecar goes unready. Without
  // it the clock fell back to the containers' starts — for a warm Pod, long before its binding, so
  // a sidecar not yet ready again right after its claim read as a stop overdue: the Pod was deleted.
  const conditions = (status.conditions ?? []).filter((c) => (c.type === 'ContainersReady' || c.type === 'Ready') && c.status === 'False');
  const times = [...conditions.map((c) => c.lastTransitionTime), sidecar.state.running.startedAt, main.state.running.startedAt].map((t) => Date.parse(t ?? '')).filter((t) => !Number.isNaN(t));
  return times.length ? Math.max(...times) : undefined;
}

/** `deletionTimestamp` is when the Pod must be gone: the request came a grace period earlier. */
function deletionRequestedAt(pod: Pod): number | undefined {
  const at = Date.parse(pod.metadata?.deletionTimestamp ?? '');
  return Number.isNaN(at) ? undefined : at - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
}
