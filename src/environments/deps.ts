/**
 * What the AgentEnvironment reconciler's phases share: its dependencies (with their defaults
 * applied once), the credentials kept for deletions, and the two ways a phase reports — events and
 * the one status writer.
 */
import type { EnvironmentsClient } from '../api/client.ts';
import type { Credential } from '../api/transport.ts';
import type { WarmPoolStatus } from '../crd/agent-environment.ts';
import { AGENT_ENVIRONMENTS, type AgentEnvironment } from '../crd/resources.ts';
import type { EventRecorder } from '../k8s/events.ts';
import type { KubeRest } from '../k8s/rest.ts';
import { SecretCache } from '../k8s/secret-cache.ts';
import type { SecretReader } from '../k8s/secrets.ts';
import { writeStatus as writeObjectStatus } from '../k8s/status.ts';
import { NO_GRANTS, type TenancyPolicy } from './ownership.ts';
import type { PlannedEvent } from './plan.ts';
import { nextStatus, type Observation } from './status.ts';

/** What the sessions feature tells this reconciler (wired in the CLI; absent for cloud-only use). */
export interface SessionsHook {
  /** Sessions of this environment running in this cluster. */
  activeSessions(env: AgentEnvironment): number;
  /** Stop this environment's sessions; resolves true once none is left running. */
  drainBeforeDeletion(env: AgentEnvironment, signal: AbortSignal): Promise<boolean>;
  /**
   * Bring the environment's children that the sessions feature owns (the session NetworkPolicy) in
   * line, level-triggered: called on every pass of a live self-hosted environment, before the
   * remote environment is read. A throw fails the pass (retried by the controller's error policy).
   */
  reconcileChildren(env: AgentEnvironment, signal: AbortSignal): Promise<void>;
  /** The environment's warm pool as its last `reconcileChildren` left it (status.warmPool); undefined without one. */
  warmPool?(env: AgentEnvironment): WarmPoolStatus | undefined;
  /** Call `enqueue(namespace, name)` when a warm Pod of environment `name` changed (its pool wants a pass). */
  onWarmPodChange?(enqueue: (namespace: string, name: string) => void): void;
}

export interface EnvironmentReconcilerDeps {
  readonly rest: KubeRest;
  readonly events: EventRecorder;
  readonly apiClient: (credential: Credential) => EnvironmentsClient;
  /** The operator's default organization API key, if configured. */
  readonly defaultCredential: () => Credential | undefined;
  /** Adoption grants and the namespaces the default key serves. Default: no grant, the key serves all. */
  readonly tenancy?: TenancyPolicy;
  readonly sessions?: SessionsHook;
  readonly now?: () => Date;
  /** How often a self-hosted environment's queue figures are refreshed. Default 60 s. */
  readonly queueRefreshMs?: number;
  /** Retry period while a credential is missing or refused. Default 30 s. */
  readonly credentialRetryMs?: number;
  /**
   * The API key Secrets, read through a cache (the operator shares one with the dispatchers).
   * Default: a cache of this reconciler's own, read on every pass ({@link freshEveryPass}).
   */
  readonly secrets?: SecretReader;
}

/** The reconciler's dependencies with defaults applied, and its one piece of memory. */
export interface Reconciler extends Required<Omit<EnvironmentReconcilerDeps, 'sessions'>> {
  readonly sessions: SessionsHook | undefined;
  /**
   * The credential that last worked for each resource (by uid), for its deletion only: deleting a
   * namespace deletes the API key Secret together with the resource, and the deletion policy must
   * still be applied rather than block the namespace forever.
   */
  readonly lastWorking: Map<string, Credential>;
}

export function reconcilerOf(deps: EnvironmentReconcilerDeps): Reconciler {
  return {
    ...deps,
    sessions: deps.sessions,
    now: deps.now ?? (() => new Date()),
    queueRefreshMs: deps.queueRefreshMs ?? 60_000,
    credentialRetryMs: deps.credentialRetryMs ?? 30_000,
    tenancy: deps.tenancy ?? NO_GRANTS,
    secrets: deps.secrets ?? freshEveryPass(new SecretCache({ rest: deps.rest })),
    lastWorking: new Map(),
  };
}

/**
 * Every pass reads the Secret (a key fixed in the Secret counts on the next pass, as a spec change
 * does); the cache still joins concurrent reads and waits out a throttled one.
 */
export function freshEveryPass(cache: SecretCache): SecretReader {
  return (namespace, ref, o) => cache.readKey(namespace, ref, { ...o, maxAgeMs: 0 });
}

export function recordEvents(r: Reconciler, env: AgentEnvironment, events: readonly PlannedEvent[]): void {
  for (const e of events) r.events.record(env, e.type, e.reason, e.message);
}

/** The status phase: write status only when it changed (one writer, one conflict policy: k8s/status.ts). */
export async function writeStatus(r: Reconciler, env: AgentEnvironment, o: Observation): Promise<void> {
  // On a Conflict (another writer, e.g. the dispatcher's Dispatching condition, got there first)
  // this pass's observation still holds for the same generation: it is merged into the fresh status.
  await writeObjectStatus(r.rest, AGENT_ENVIRONMENTS, env, (current) => nextStatus(current, o, r.now()));
}
