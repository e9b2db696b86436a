/**
 * The Pod status the kubelet reports, computed from the spec, its container records and the plan
 * (pure). Condition transition times are kept from the previous status while a condition's status
 * does not change, so an unchanged Pod produces an identical status and no write.
 */
import { emptyRecord, kindOf, restartDelayMs, willRestart, type ContainerRecord, type Plan, type PodRecord, type Termination } from './plan.ts';
import { isSidecar, type Container, type ContainerStateWire, type ContainerStatus, type Pod, type PodCondition, type PodStatus } from './pod-types.ts';

export interface StatusInputs {
  readonly pod: Pod;
  readonly record: PodRecord;
  readonly plan: Plan;
  readonly hostIP: string;
  /** RFC 3339 "now", for new condition transitions. */
  readonly now: string;
}

const terminatedState = (t: Termination): ContainerStateWire => ({
  terminated: { exitCode: t.exitCode, reason: t.exitCode === 0 ? 'Completed' : 'Error', startedAt: t.startedAt, finishedAt: t.finishedAt },
});

/** `final`: the Pod is done, so an exited container shows as terminated even if its policy would restart it. */
export function containerStatus(pod: Pod, c: Container, r: ContainerRecord, initialized: boolean, final = false): ContainerStatus {
  const kind = kindOf(pod, c.name);
  let state: ContainerStateWire;
  let lastState: ContainerStateWire = {};
  if (r.running) {
    state = { running: { startedAt: r.running.startedAt } };
    if (r.terminated) lastState = terminatedState(r.terminated);
  } else if (r.terminated && !final && willRestart(pod, kind, r.terminated.exitCode) && !r.succeeded) {
    state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(restartDelayMs(r.restartCount) / 1000)}s restarting failed container=${c.name} pod=${pod.metadata?.name}` } };
    lastState = terminatedState(r.terminated);
  } else if (r.terminated) {
    state = terminatedState(r.terminated);
    if (r.previous) lastState = terminatedState(r.previous);
  } else if (r.waiting) {
    state = { waiting: { reason: r.waiting.reason, ...(r.waiting.message ? { message: r.waiting.message } : {}) } };
  } else {
    state = { waiting: { reason: kind === 'regular' && !initialized ? 'PodInitializing' : 'ContainerCreating' } };
  }
  return {
    name: c.name,
    image: c.image ?? '',
    imageID: r.running || r.terminated ? `process://${c.image ?? ''}` : '',
    ...(r.running || r.terminated ? { containerID: `process://${pod.metadata?.uid ?? ''}/${c.name}/${r.restartCount}` } : {}),
    state,
    lastState,
    ready: Boolean(r.running) && r.ready,
    started: Boolean(r.running) && r.started,
    restartCount: r.restartCount,
  };
}

export function podStatus({ pod, record, plan, hostIP, now }: StatusInputs): PodStatus {
  const rec = (name: string): ContainerRecord => record.containers[name] ?? emptyRecord();
  const inits = pod.spec.initContainers ?? [];
  const terminal = plan.phase === 'Succeeded' || plan.phase === 'Failed';
  const final = plan.stopSidecars || terminal;
  const initStatuses = inits.map((c) => containerStatus(pod, c, rec(c.name), plan.initialized, final));
  const statuses = pod.spec.containers.map((c) => containerStatus(pod, c, rec(c.name), plan.initialized, final));

  const containersReady = !terminal && statuses.every((s) => s.ready);
  const sidecarsReady = inits.filter(isSidecar).every((c) => initStatuses.find((s) => s.name === c.name)?.ready);
  const notReady = statuses.filter((s) => !s.ready).map((s) => s.name);
  const reasonNotReady = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const message = terminal ? undefined : `containers with unready status: [${notReady.join(' ')}]`;
  const conditions: PodCondition[] = [
    { type: 'PodReadyToStartContainers', status: 'True' },
    plan.initialized ? { type: 'Initialized', status: 'True' } : { type: 'Initialized', status: 'False', reason: 'ContainersNotInitialized', message: `containers with incomplete status: [${pendingInits(pod, record).join(' ')}]` },
    containersReady ? { type: 'ContainersReady', status: 'True' } : { type: 'ContainersReady', status: 'False', reason: reasonNotReady, ...(message ? { message } : {}) },
    containersReady && sidecarsReady ? { type: 'Ready', status: 'True' } : { type: 'Ready', status: 'False', reason: reasonNotReady, ...(message ? { message } : {}) },
    { type: 'PodScheduled', status: 'True' },
  ];
  return {
    phase: plan.phase,
    conditions: conditions.map((c) => withTransitionTime(c, pod.status?.conditions, now)),
    hostIP,
    hostIPs: [{ ip: hostIP }],
    podIP: record.podIP,
    podIPs: [{ ip: record.podIP }],
    startTime: record.startTime,
    ...(inits.length ? { initContainerStatuses: initStatuses } : {}),
    containerStatuses: statuses,
  };
}

function pendingInits(pod: Pod, record: PodRecord): string[] {
  return (pod.spec.initContainers ?? []).filter((c) => (isSidecar(c) ? !record.containers[c.name]?.started : !record.containers[c.name]?.succeeded)).map((c) => c.name);
}

/** Keep `lastTransitionTime` while the condition's status is unchanged (the API's convention). */
function withTransitionTime(c: PodCondition, previous: PodCondition[] | undefined, now: string): PodCondition {
  const old = previous?.find((p) => p.type === c.type);
  return { ...c, lastProbeTime: null, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now };
}
