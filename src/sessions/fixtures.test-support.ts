/**
 * Small builders for the session feature's unit tests (not a test file itself):
 * `agentSession().acknowledged().withPod(running())`, then `.session`, `.pod` or `.podView`.
 * Times are seconds after the claim (`iso(5)`: five seconds after `claimedAt`).
 */
import { AgentEnvironmentSpec } from '../crd/agent-environment.ts';
import type { AgentSessionStatus } from '../crd/agent-session.ts';
import { viewPod, type PodView } from './objects/pod-view.ts';
import { SIDECAR_NAME } from './objects/pod.ts';
import { SIDECAR_EXIT_LEASE_LOST } from '../contract/sidecar.ts';
import type { AgentEnvironment, AgentSession } from '../crd/resources.ts';
import { podName, sessionName, workLabels } from './record/names.ts';
import type { Pod, PodStatus } from './objects/pod-types.ts';

export const ENV_NAME = 'data';
export const NAMESPACE = 'team-a';
export const SESSION_ID = 'sesn_01';
export const WORK_ID = 'work_01';
export const SESSION = sessionName(ENV_NAME, SESSION_ID);
export const POD = podName(SESSION, WORK_ID);

/** An AgentEnvironment with a parsed self-hosted spec; `selfHosted` overrides merge into the defaults. */
export function agentEnvironment(selfHosted: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): AgentEnvironment {
  const spec = AgentEnvironmentSpec.parse({
    selfHosted: {
      sessionTemplate: { spec: { containers: [{ name: 'session', image: 'local/shell', command: ['/bin/sh', '-c', 'sleep 1'] }] } },
      environmentKeySecretRef: { name: 'env-key', key: 'key' },
      ...selfHosted,
    },
    ...extra,
  });
  return { apiVersion: 'agentenv.io/v1alpha1', kind: 'AgentEnvironment', metadata: { name: ENV_NAME, namespace: NAMESPACE, uid: 'env-uid' }, spec, status: { environmentId: 'env_1' } };
}

/** When the fixture's work item was claimed; {@link iso} counts from here. */
export const CLAIMED_AT = '2026-01-01T00:00:00.000Z';
export const at = (seconds: number): Date => new Date(Date.parse(CLAIMED_AT) + seconds * 1000);
export const iso = (seconds: number): string => at(seconds).toISOString();

/** The AgentSession record of the fixture's claim, as the dispatcher writes it. */
export function sessionRecord(overrides: Partial<AgentSession['spec']> = {}, status: AgentSession['status'] = undefined): AgentSession {
  return {
    apiVersion: 'agentenv.io/v1alpha1',
    kind: 'AgentSession',
    metadata: { name: SESSION, namespace: NAMESPACE, uid: 'session-uid', finalizers: ['agentenv.io/session'], creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      environmentRef: { name: ENV_NAME },
      environmentId: 'env_1',
      sessionId: SESSION_ID,
      workId: WORK_ID,
      workerId: 'worker-1',
      claimedAt: CLAIMED_AT,
      ...overrides,
    },
    ...(status ? { status } : {}),
  };
}

/** A bare record as the dispatcher's tests see it (work_2 of session_1 in environment `prod`, namespace `ns`). */
export function dispatchRecord(o: { workId?: string; status?: AgentSession['status']; claimedAt?: string; name?: string; env?: string } = {}): AgentSession {
  return {
    metadata: { name: o.name ?? 'prod-abc', namespace: 'ns', uid: 'u1' },
    spec: { environmentRef: { name: o.env ?? 'prod' }, environmentId: 'env_1', sessionId: 'session_1', workId: o.workId ?? 'work_2', claimedAt: o.claimedAt ?? '2026-01-01T00:00:00.000Z' },
    ...(o.status ? { status: o.status } : {}),
  };
}

/** A builder of a session record and its current work item's Pod. */
export class SessionFixture {
  readonly session: AgentSession;
  readonly pod: Pod | undefined;

  constructor(session: AgentSession, pod?: Pod) {
    this.session = session;
    this.pod = pod;
  }

  /** The record acknowledges its work item (phase Starting), as the dispatcher's ack writes it. */
  acknowledged(atSeconds = 0): SessionFixture {
    return this.withStatus({ phase: 'Starting', workId: WORK_ID, workState: 'starting', acknowledgedAt: iso(atSeconds) });
  }

  /** Status fields merged over the current status. */
  withStatus(status: AgentSessionStatus): SessionFixture {
    return new SessionFixture({ ...this.session, status: { ...this.session.status, ...status } }, this.pod);
  }

  withSpec(spec: Partial<AgentSession['spec']>): SessionFixture {
    return new SessionFixture({ ...this.session, spec: { ...this.session.spec, ...spec } }, this.pod);
  }

  /** The record is being deleted (deletionTimestamp set). */
  deleting(at: Date): SessionFixture {
    return new SessionFixture({ ...this.session, metadata: { ...this.session.metadata, deletionTimestamp: at.toISOString() } }, this.pod);
  }

  /** The current work item's Pod, in the given status. */
  withPod(status: PodStatus, meta: Partial<NonNullable<Pod['metadata']>> = {}): SessionFixture {
    return new SessionFixture(this.session, sessionPod(status, meta));
  }

  /** The Pod as the decisions read it. */
  get podView(): PodView | undefined {
    return this.pod ? viewPod(this.pod) : undefined;
  }
}

/** `agentSession()`: the record of the fixture's claim, not acknowledged yet; chain the rest. */
export function agentSession(spec: Partial<AgentSession['spec']> = {}): SessionFixture {
  return new SessionFixture(sessionRecord(spec));
}

/** Pod statuses (times in seconds after the claim). */
export const running = (startedSec = 2): PodStatus => ({
  phase: 'Running',
  containerStatuses: [{ name: 'session', started: true, state: { running: { startedAt: iso(startedSec) } } }],
});
export const exited = (exitCode: number, finishedSec: number, phase: PodStatus['phase'] = 'Succeeded'): PodStatus => ({
  phase,
  containerStatuses: [{ name: 'session', state: { terminated: { exitCode, finishedAt: iso(finishedSec), startedAt: iso(2) } } }],
});
/** A Pod that ended after its sidecar lost the lease: the sidecar exited `SIDECAR_EXIT_LEASE_LOST`. */
export const endedLeaseLost = (finishedSec: number): PodStatus => ({
  ...exited(0, finishedSec),
  initContainerStatuses: [{ name: SIDECAR_NAME, started: false, ready: false, state: { terminated: { exitCode: SIDECAR_EXIT_LEASE_LOST, finishedAt: iso(finishedSec) } } }],
});
export const pending = (): PodStatus => ({ phase: 'Pending' });
/**
 * The sidecar asks the main container to end: started, not ready since `sinceSec` (the Pod's
 * ContainersReady=False transition), the main container running since `mainSec`.
 */
export const sidecarNotReady = (sinceSec: number, mainSec = 2, sidecar: { started?: boolean } = {}): PodStatus => ({
  phase: 'Running',
  conditions: [{ type: 'ContainersReady', status: 'False', lastTransitionTime: iso(sinceSec) }],
  initContainerStatuses: [{ name: SIDECAR_NAME, started: sidecar.started ?? true, ready: false, state: { running: { startedAt: iso(1) } } }],
  containerStatuses: [{ name: 'session', started: true, ready: true, state: { running: { startedAt: iso(mainSec) } } }],
});
export const pullFailure = (): PodStatus => ({ phase: 'Pending', containerStatuses: [{ name: 'session', state: { waiting: { reason: 'ImagePullBackOff', message: 'no such image' } } }] });
export const unschedulable = (): PodStatus => ({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes match nodeSelector' }] });

/** Bound to a node unless the status says the scheduler found none, or it is `{ phase: 'Pending', reason: 'Unbound' }`. */
const unbound = (s: PodStatus): boolean => s.reason === 'Unbound' || (s.conditions ?? []).some((c) => c.type === 'PodScheduled' && c.status === 'False');

/** A session Pod in the given status. */
export function sessionPod(status: PodStatus = {}, meta: Partial<NonNullable<Pod['metadata']>> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: NAMESPACE, labels: workLabels(ENV_NAME, SESSION, WORK_ID), creationTimestamp: '2026-01-01T00:00:01Z', ...meta },
    spec: { containers: [{ name: 'session' }], ...(unbound(status) ? {} : { nodeName: 'node-1' }) },
    status,
  };
}
