/**
 * What the AgentSession reconciler works with: the Kubernetes and API clients, the caches it reads
 * and the recorders it reports to. {@link reconcilerDeps} fills in the defaults once, so the
 * phases (phases.ts) read one object.
 */
import type { EnvironmentsClient } from '../../api/client.ts';
import type { Credential } from '../../api/transport.ts';
import type { AgentEnvironment } from '../../crd/resources.ts';
import type { EventRecorder } from '../../k8s/events.ts';
import type { OwnWrites } from '../../k8s/own-writes.ts';
import type { KubeRest } from '../../k8s/rest.ts';
import type { SessionStart } from '../../telemetry/metrics.ts';
import type { PodRefusal } from '../objects/pod-refusal.ts';
import type { Pod } from '../objects/pod-types.ts';
import type { ProxyAddressMode, RunnerSettings, SessionPodPolicy, SidecarSettings } from '../objects/pod.ts';
import { kubeRecordStore, type RecordStore } from '../record/record.ts';
import type { Acknowledgements } from './acknowledgements.ts';

/** The narrow metrics the session reconciler reports (prom-client stays in telemetry). */
export interface SessionRecorder {
  /** claimedAt → Pod created. */
  podCreated(latencyMs: number): void;
  /** claimedAt → lease claimed (item `active`, as observed). */
  /**
   * Claim → lease claimed by the sidecar. `path`: `warm` when a warm Pod was bound to the item
   * (spec.warmPod), else `cold`.
   */
  claimed(latencyMs: number, path?: 'warm' | 'cold'): void;
  /**
   * The item's lease became active: its enqueue (`created_at`) → lease active (`started_at`), both
   * the API's own timestamps, per environment and by how the Pod started.
   */
  sessionStarted?(env: { readonly namespace: string; readonly name: string }, start: SessionStart, latencyMs: number): void;
  /** A work item stopped by the operator, by reason. */
  stopped(reason: string): void;
  /** Lease outcomes as the operator observes them (claimed, lost). */
  heartbeats(outcome: string, n: number): void;
  /** Workspace claims the operator made, by phase (Pending, Bound, Lost, Retained), from the sweep. */
  workspaces?(byPhase: Readonly<Record<string, number>>): void;
}

/** The work-item calls the reconciler makes; without `getSession` the session's API status is unknown (no `Idle`, retention by time only). */
export type WorkApi = Pick<EnvironmentsClient, 'getWork' | 'stopWork'> & Partial<Pick<EnvironmentsClient, 'getSession'>>;

export interface SessionReconcilerDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly apiClient: (credential: Credential) => WorkApi;
  /**
   * The credential for work-item calls (read, stop) of a session of `env`, or why there is none
   * (the operator wires the dispatch credential: dispatch/credentials.ts `workItemCredential`).
   */
  readonly workCredential: (env: AgentEnvironment) => Promise<Credential | string>;
  /** The organization key for `GET /v1/sessions/{id}` (retention, the `Idle` ending). Default: {@link workCredential}. */
  readonly sessionCredential?: (env: AgentEnvironment) => Promise<Credential | string>;
  readonly sidecar: SidecarSettings;
  /** The default runner's image (environments without a sessionTemplate). Default: objects/pod.ts `DEFAULT_RUNNER`. */
  readonly runner?: RunnerSettings;
  /** Where session Pods' sidecar proxy listens. Default `loopback`. */
  readonly proxyAddress?: ProxyAddressMode;
  /** A session Pod create of environment `namespace/envName` was refused for capacity (its dispatch then holds). */
  readonly onCapacityRefused?: (namespace: string, envName: string, refusal: PodRefusal) => void;
  /** Session Pods' priority class and disruption defaults. Default none. */
  readonly podPolicy?: SessionPodPolicy;
  /** API base URL given to session Pods. */
  readonly baseUrl: string;
  /** The Pods of one session (any work item), from the Pod informer. */
  readonly podsOf: (namespace: string, session: string) => Pod[];
  /** The last state of a session Pod deleted in the last minute (the Pod informer's delete events). */
  readonly deletedPod?: (namespace: string, name: string) => Pod | undefined;
  readonly metrics?: SessionRecorder;
  /**
   * The AgentEnvironment from the operator's informer cache. A miss is read from the apiserver (a
   * cache that has not seen a new environment yet must not make it look deleted).
   */
  readonly cachedEnvironment?: (namespace: string, name: string) => AgentEnvironment | undefined;
  /** Acknowledgements this process made and has not written yet (the dispatcher adds them). */
  readonly acknowledgements: Acknowledgements;
  /** Where a pass records the Pods it created and the statuses it wrote, so their own watch events cause no pass (k8s/own-writes.ts). Default: not recorded. */
  readonly ownWrites?: OwnWrites;
  readonly now?: () => Date;
}

/** The deps with their defaults filled in, as the phases use them. */
export interface ReconcilerDeps extends SessionReconcilerDeps {
  readonly now: () => Date;
  readonly store: RecordStore;
}

export function reconcilerDeps(deps: SessionReconcilerDeps): ReconcilerDeps {
  return { ...deps, now: deps.now ?? (() => new Date()), store: kubeRecordStore(deps.rest) };
}
